"""PostgreSQL as the warehouse (Redshift-dialect SQL reaches it through sqlglot).

Staged Parquet goes in with COPY (CSV written by Arrow, batch by batch: no pandas, bounded memory);
results come out through a server-side cursor, converted to Arrow in batches.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv

from dagspec.connections import ConnectionInfo
from dagspec.partitions import Key
from dagspec.sql import qualified, quote
from dagspec.utc import LIBPQ_OPTIONS
from dagspec.warehouse.base import SchemaDrift, columns_diff, history_filter, prune_sql
from dagspec.warehouse.batch_columns import BatchColumns, pyformat
from dagspec.warehouse.chunk_load import chunk_sql, counts_by_key, first_key, load_chunk
from dagspec.warehouse.contract import ArrowSource, record_batches
from dagspec.warehouse.postgres_index import index_batch_columns

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)
DIALECT = "postgres"


class PostgresWarehouse:
    dialect = DIALECT

    def __init__(self, info: ConnectionInfo):
        self.info = info

    def connect(self) -> psycopg.Connection:
        import psycopg

        i = self.info
        kwargs = {k: v for k, v in {
            "host": i.host or "127.0.0.1", "port": i.port or self.default_port(), "user": i.login, "password": i.password,
            "dbname": i.schema or i.extra.get("database"), "sslmode": i.extra.get("sslmode"),
            "application_name": "dagspec", "options": LIBPQ_OPTIONS,
        }.items() if v is not None}
        try:
            return psycopg.connect(autocommit=True, **kwargs)
        except psycopg.Error as exc:
            raise ConnectionError(i.scrub(f"warehouse connection {i.conn_id!r} ({i.conn_type}): {exc}".strip())) from None

    def default_port(self) -> int:
        return 5432

    @contextmanager
    def session(self) -> Iterator[PostgresSession]:
        con = self.connect()
        try:
            yield PostgresSession(con)
        finally:
            con.close()


class PostgresSession:
    """Autocommit between calls; every write that must be atomic runs inside its own transaction."""

    dialect = DIALECT
    loads_chunks = True  # replace_batches: a chunk's batches in one statement each

    def __init__(self, con: psycopg.Connection):
        self.con = con

    # -- running SQL --------------------------------------------------------------------------
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        with self.con.cursor() as cur:
            cur.execute(_escape_percent(sql, params), params or None)
            return cur.fetchall() if cur.description else []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            yield

    # -- reading inputs -----------------------------------------------------------------------
    def expose(self, name: str, relation: ArrowSource) -> str:
        """Load an Arrow dataset/table/reader into a temp table with COPY (CSV from Arrow, batch by batch)."""
        schema = relation.schema
        batches = record_batches(relation)
        target = quote(name, DIALECT)
        cols = ", ".join(f"{quote(f.name, DIALECT)} {pg_type(f.type, f.name)}" for f in schema)
        self.execute(f"DROP TABLE IF EXISTS {target}")
        self.execute(f"CREATE TEMP TABLE {target} ({cols})")
        options = pacsv.WriteOptions(include_header=False, batch_size=10_000)
        with self.con.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
                copy.write(buf.getvalue())
        self.execute(f"ANALYZE {target}")
        return target

    def expose_batch(self, name: str, schema: str, table: str, batch_date: Key) -> str:
        """A temp view of one batch of a warehouse table, without the columns dagspec added."""
        added = BatchColumns.of(batch_date)
        cols = [c for c, _ in (self.table_columns(schema, table) or []) if c not in added.names]
        if not cols:
            raise LookupError(f"warehouse table {schema}.{table} does not exist: did the step that writes it run?")
        self.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote(name, DIALECT)} AS SELECT "
            + ", ".join(quote(c, DIALECT) for c in cols)
            + f" FROM {qualified(schema, table, DIALECT)} WHERE {added.literal_where()}"
        )
        return quote(name, DIALECT)

    def expose_history(self, name: str, schema: str, table: str, first: date | None, last: date) -> str:
        self.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name, DIALECT)} AS SELECT * FROM "
                     f"{qualified(schema, table, DIALECT)} WHERE {history_filter(first, last)}")
        return quote(name, DIALECT)

    def relation(self, schema: str, table: str) -> str:
        return qualified(schema, table, DIALECT)

    # -- schema ------------------------------------------------------------------------------
    def columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """Result columns with PostgreSQL's own type names (format_type), found by planning a LIMIT 0 copy."""
        with self.transaction():
            self.execute("DROP TABLE IF EXISTS pg_temp._dagspec_probe")
            self.execute(f"CREATE TEMP TABLE _dagspec_probe ON COMMIT DROP AS SELECT * FROM ({select_sql}) AS q LIMIT 0",
                         params)
            return self._attributes("pg_temp", "_dagspec_probe")

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        return self._attributes(schema, table) or None

    def _attributes(self, schema: str, table: str) -> list[tuple[str, str]]:
        rows = self.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = %(t)s AND (n.nspname = %(s)s OR (%(s)s = 'pg_temp' AND n.oid = pg_my_temp_schema())) "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            {"s": schema, "t": table},
        )
        return [(r[0], r[1]) for r in rows]

    def prepare_target(self, schema: str, table: str, select_sql: str, params: dict[str, Any],
                        with_batch_date: bool = True, added: BatchColumns | None = None) -> list[str]:
        """Inside the caller's transaction: create the table if missing, else refuse a changed shape.
        `added`: the batch columns dagspec appends (a daily batch's batch_date when not given)."""
        produced = self.columns(select_sql, params)
        added = added or BatchColumns.of(date.min)
        if with_batch_date:
            added.refuse_clash(produced)
        wanted = produced + (added.typed("date", "timestamp without time zone") if with_batch_date else [])
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, DIALECT)}")
        existing = self.table_columns(schema, table)
        if existing is None:
            cols = ", ".join(f"{quote(n, DIALECT)} {t}" for n, t in wanted)
            self.execute(f"CREATE TABLE {qualified(schema, table, DIALECT)} ({cols})")
            if with_batch_date:
                self.index_batch_columns(schema, table, added)
        elif columns_diff(existing, wanted):
            raise SchemaDrift(f"{schema}.{table}", columns_diff(existing, wanted))
        return [n for n, _ in wanted]

    # -- writing ----------------------------------------------------------------------------
    def replace_batch(self, schema: str, table: str, batch_date: Key, select_sql: str, params: dict[str, Any],
                      keep: int | None = None, after: Sequence[str] = ()) -> int:
        """Delete-then-insert one batch in one transaction; the SELECT must not produce batch_date itself."""
        with self.transaction():  # psycopg nests the merge's own transaction as a savepoint
            count = self.merge_batch(schema, table, batch_date, select_sql, params, key=None)
            if keep is not None:
                self.execute(prune_sql(qualified(schema, table, DIALECT), keep, BatchColumns.of(batch_date).replace_by))
            for statement in after:
                self.execute(statement)
        return count

    def replace_batches(self, schema: str, table: str, parts: Sequence[tuple[Key, str]], params: dict[str, Any],
                        keep: int | None = None, after: Sequence[str] = ()) -> dict[Key, int]:
        """replace_batch for a chunk: one column check, one DELETE and one INSERT for all its batches."""
        target = qualified(schema, table, DIALECT)
        chunk = chunk_sql(target, parts, params, pyformat)
        with self.transaction():
            cols = self.prepare_target(schema, table, chunk.source, params, added=first_key(parts))
            col_list = ", ".join(quote(c, DIALECT) for c in cols)
            counted = load_chunk(self.execute, target, chunk,
                                 f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM ({chunk.rows}) AS s", keep,
                                 after)
        return counts_by_key(parts, chunk.by, counted)

    def merge_batch(self, schema: str, table: str, batch_date: Key, select_sql: str, params: dict[str, Any],
                    key: list[str] | None) -> int:
        """key=None: replace the batch. key=[...]: upsert on the key (rows of other batches with that key move here)."""
        target = qualified(schema, table, DIALECT)
        added = BatchColumns.of(batch_date)
        bound = {**params, **added.params()}
        this = {added.replace_by: added.params()[added.replace_by]}
        with self.transaction():
            cols = self.prepare_target(schema, table, select_sql, params, added=added)
            col_list = ", ".join(quote(c, DIALECT) for c in cols)
            src = f"SELECT *, {added.select(pyformat)} FROM ({select_sql}) AS _dagspec_src"
            if key is None:
                self.execute(f"DELETE FROM {target} WHERE {added.where(pyformat)}", this)
                self.execute(f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM ({src}) AS s", bound)
            else:
                missing = [k for k in key if k not in cols]
                if missing:
                    raise ValueError(f"merge key column(s) {', '.join(missing)} are not in the result")
                keys = ", ".join(quote(k, DIALECT) for k in key)
                self.execute(f"CREATE TEMP TABLE _dagspec_merge ON COMMIT DROP AS {src}", bound)
                dupes = self.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM _dagspec_merge")[0][0]
                if dupes:
                    raise ValueError(f"the result has {dupes} duplicate row(s) on the merge key ({', '.join(key)})")
                on = " AND ".join(f"t.{quote(k, DIALECT)} = s.{quote(k, DIALECT)}" for k in key)
                sets = ", ".join(f"{quote(c, DIALECT)} = s.{quote(c, DIALECT)}" for c in cols if c not in key)
                vals = ", ".join(f"s.{quote(c, DIALECT)}" for c in cols)
                self.execute(
                    f"MERGE INTO {target} AS t USING _dagspec_merge AS s ON {on} "
                    + (f"WHEN MATCHED THEN UPDATE SET {sets} " if sets else "")
                    + f"WHEN NOT MATCHED THEN INSERT ({col_list}) VALUES ({vals})"
                )
            return self.execute(f"SELECT count(*) FROM {target} WHERE {added.where(pyformat)}", this)[0][0]

    def replace_table(self, schema: str, table: str, batch_date: Key, select_sql: str, params: dict[str, Any]) -> int:
        """Build the new table beside the old and swap names in one transaction: readers see old or new."""
        target = qualified(schema, table, DIALECT)
        new_name = f"_dagspec_new_{table}"[:63]
        new = qualified(schema, new_name, DIALECT)
        added = BatchColumns.of(batch_date)
        with self.transaction():
            added.refuse_clash(self.columns(select_sql, params))
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, DIALECT)}")
            self.execute(f"DROP TABLE IF EXISTS {new}")
            self.execute(f"CREATE TABLE {new} AS SELECT *, {added.select(pyformat)} "
                         f"FROM ({select_sql}) AS _dagspec_src", {**params, **added.params()})
            kind = self.relation_kind(schema, table)
            views = self._dependent_views(target) if kind == "r" else []
            if views:
                # PostgreSQL views hold the table itself, not its name: a swap would need DROP ... CASCADE,
                # which drops them silently. With the same columns, refill the table in place instead
                # (TRUNCATE is transactional here: readers see the old rows until commit).
                if self._column_types(target) != self._column_types(new):
                    raise ValueError(f"{schema}.{table} changes its columns but view(s) {', '.join(views)} depend "
                                     "on it; drop or change those views first (nothing was replaced)")
                self.execute(f"TRUNCATE {target}")
                self.execute(f"INSERT INTO {target} SELECT * FROM {new}")
                self.execute(f"DROP TABLE {new}")
            else:
                self.execute(f"DROP VIEW IF EXISTS {target}") if kind == "v" else None
                self.execute(f"DROP TABLE IF EXISTS {target}")
                self.execute(f"ALTER TABLE {new} RENAME TO {quote(table, DIALECT)}")
                self.index_batch_columns(schema, table, added)
            return self.execute(f"SELECT count(*) FROM {target}")[0][0]

    def _dependent_views(self, relation: str) -> list[str]:
        rows = self.execute(
            "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
            "JOIN pg_class v ON v.oid = r.ev_class WHERE d.refobjid = to_regclass(%(rel)s) AND v.oid <> d.refobjid",
            {"rel": relation})
        return sorted(r[0] for r in rows)

    def _column_types(self, relation: str) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%(rel)s) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", {"rel": relation})]

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        target = qualified(schema, table, DIALECT)
        with self.transaction():
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, DIALECT)}")
            if self.relation_kind(schema, table) == "r":
                self.execute(f"DROP TABLE {target}")
            self.execute(f"DROP VIEW IF EXISTS {target}")
            self.execute(f"CREATE VIEW {target} AS {select_sql}")

    def drop_schema(self, schema: str) -> None:
        self.execute(f"DROP SCHEMA IF EXISTS {quote(schema, DIALECT)} CASCADE")

    def index_batch_columns(self, schema: str, table: str, added: BatchColumns) -> None:
        """A new published table's index on the columns its batches are replaced and read by."""
        index_batch_columns(self.execute, schema, table, added)

    def relation_kind(self, schema: str, table: str) -> str | None:
        rows = self.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = %(s)s AND c.relname = %(t)s", {"s": schema, "t": table})
        return rows[0][0] if rows else None

    # -- reading results ----------------------------------------------------------------------
    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Stream a result through a server-side cursor; memory stays at one batch whatever the row count."""
        schema = self._arrow_schema(select_sql, params)
        sql = _escape_percent(select_sql, params)

        def batches() -> Iterator[pa.RecordBatch]:
            with self.con.transaction(), self.con.cursor(name="_dagspec_stream") as cur:
                cur.itersize = batch_rows
                cur.execute(sql, params or None)
                while rows := cur.fetchmany(batch_rows):
                    cols = list(zip(*rows))
                    yield pa.RecordBatch.from_arrays(
                        [pa.array(c, type=f.type) for c, f in zip(cols, schema)], schema=schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _arrow_schema(self, select_sql: str, params: dict[str, Any]) -> pa.Schema:
        return pa.schema([pa.field(n, arrow_type(t)) for n, t in self.columns(select_sql, params)])


def _escape_percent(sql: str, params: dict[str, Any] | None) -> str:
    """psycopg reads '%' as a placeholder when parameters are bound: double every '%' that is not one of ours."""
    if not params:
        return sql
    names = "|".join(re.escape(n) for n in params)
    return re.sub(rf"%(?!\((?:{names})\)s)", "%%", sql)


def pg_type(t: pa.DataType, column: str = "") -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type, column)
    raise TypeError(f"column {column!r} has Arrow type {t}, which the PostgreSQL warehouse cannot load yet")


_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")


def arrow_type(pg: str) -> pa.DataType:
    if m := _NUMERIC.fullmatch(pg):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    simple = {
        "boolean": pa.bool_(), "smallint": pa.int16(), "integer": pa.int32(), "bigint": pa.int64(),
        "real": pa.float32(), "double precision": pa.float64(), "text": pa.string(), "date": pa.date32(),
        "timestamp without time zone": pa.timestamp("us"), "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "time without time zone": pa.time64("us"), "bytea": pa.binary(),
        # Unconstrained numeric (sum(), avg()): wide enough for money sums, exact to 10 places.
        "numeric": pa.decimal128(38, 10),
    }
    if pg in simple:
        return simple[pg]
    if pg.startswith(("character varying", "character(", "varchar")) or pg in ("character", "name", "uuid", "json",
                                                                               "jsonb"):
        return pa.string()
    raise TypeError(f"PostgreSQL type {pg} has no Arrow mapping in dagspec yet; cast it in the SQL")
