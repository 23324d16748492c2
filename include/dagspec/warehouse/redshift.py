"""Amazon Redshift as the warehouse, on Redshift's own load path: data moves through S3 as Parquet.

In: a batch is written as Parquet under the staging prefix (an `aws` connection named by the Redshift
connection's extra.staging_conn_id, whose extra.path is s3://bucket/prefix), then `COPY ... FORMAT AS
PARQUET` loads it into a temp table, authorised by extra.iam_role (or the staging connection's keys).
Out: `UNLOAD (...) TO 's3://...' FORMAT AS PARQUET`, read back as an Arrow dataset in bounded memory.
Writes: delete + insert of the batch in one transaction (a merge is delete-matching + insert, Redshift's
documented upsert), then `ANALYZE`. Every DDL/DML statement here is plain Redshift SQL; none of
PostgreSQL's extras (COPY FROM STDIN, ON COMMIT DROP, temp views, MERGE ... AS, regclass) is used.
The driver is psycopg or redshift_connector, as the connection's extra.driver says (redshift_driver.py).

What runs here without a cluster: every statement is recorded and parsed with sqlglot's Redshift dialect
in the tests, the S3 side runs against the S3 emulator, and the transaction logic runs on PostgreSQL with
only the COPY/UNLOAD step replaced (tests/support/redshift_standin.py). The README says what that leaves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from dagspec.connections import ConnectionInfo, Resolver, env_resolver
from dagspec.secrets import scrub_known
from dagspec.sql import qualified, quote
from dagspec.warehouse.base import history_filter
from dagspec.warehouse.batch_columns import BatchColumns, daily_only
from dagspec.warehouse.contract import ArrowSource, record_batches
from dagspec.warehouse.nesting import JoinsNested
from dagspec.warehouse.postgres import PostgresSession, PostgresWarehouse
from dagspec.warehouse.redshift_driver import ConnectorConnection, connect_with_connector, driver_of
from dagspec.warehouse.redshift_types import column_type, redshift_type

if TYPE_CHECKING:
    import psycopg

DIALECT = "redshift"


class S3Staging:
    """The prefix batches pass through, and the authorisation clause COPY and UNLOAD carry."""

    def __init__(self, staging: ConnectionInfo, iam_role: str | None):
        from dagspec.filesystems import location

        self.info, self.location = staging, location(staging)
        if self.location.kind != "s3":
            raise ValueError(f"Redshift staging connection {staging.conn_id!r} must point at s3://bucket/prefix")
        self.iam_role = iam_role

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.info.password, self.info.extra.get("aws_session_token")) if s]

    def authorization(self) -> str:
        if self.iam_role:
            return f"IAM_ROLE '{_literal(self.iam_role)}'"
        if not (self.info.login and self.info.password):
            raise ValueError(f"Redshift staging connection {self.info.conn_id!r} has no keys and the warehouse "
                             "connection no extra.iam_role: give one of them")
        clause = f"ACCESS_KEY_ID '{_literal(self.info.login)}' SECRET_ACCESS_KEY '{_literal(self.info.password)}'"
        token = self.info.extra.get("aws_session_token")
        return clause + (f" SESSION_TOKEN '{_literal(token)}'" if token else "")

    def new_prefix(self, label: str) -> str:
        return f"{self.location.path.rstrip('/')}/_dagspec_{label}_{uuid.uuid4().hex[:12]}"

    def put(self, prefix: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> str:
        import pyarrow.parquet as pq

        with self.location.fs.open_output_stream(f"{prefix}/part-00000.parquet") as out, \
                pq.ParquetWriter(out, schema, compression="zstd") as writer:
            for batch in batches:
                writer.write_batch(batch)
        return f"s3://{prefix}/"

    def read(self, prefix: str) -> Iterator[pa.RecordBatch]:
        import pyarrow.dataset as pads
        import pyarrow.fs as pafs

        files = [i.path for i in self.location.fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True))
                 if i.type == pafs.FileType.File]
        if files:
            yield from pads.dataset(sorted(files), filesystem=self.location.fs, format="parquet").to_batches()

    def remove(self, prefix: str) -> None:
        try:
            self.location.fs.delete_dir(prefix)
        except FileNotFoundError:
            pass


class Load(Protocol):
    """The one step a stand-in may replace in tests: moving Parquet between S3 and Redshift."""

    def copy_in(self, session: RedshiftSession, target: str, uri: str) -> None: ...

    def unload(self, session: RedshiftSession, select_sql: str, uri: str) -> None: ...


def copy_sql(staging: S3Staging, target: str, uri: str) -> str:
    return f"COPY {target} FROM '{_literal(uri)}' {staging.authorization()} FORMAT AS PARQUET"


def unload_sql(staging: S3Staging, select_sql: str, uri: str) -> str:
    return f"UNLOAD ('{_literal(select_sql)}') TO '{_literal(uri)}' {staging.authorization()} FORMAT AS PARQUET"


class RedshiftLoad:
    def copy_in(self, session: RedshiftSession, target: str, uri: str) -> None:
        session.execute(copy_sql(session.staging, target, uri))

    def unload(self, session: RedshiftSession, select_sql: str, uri: str) -> None:
        session.execute(unload_sql(session.staging, select_sql, uri))


class RedshiftWarehouse(PostgresWarehouse):
    dialect = DIALECT

    def __init__(self, info: ConnectionInfo, resolver: Resolver = env_resolver, load: Load | None = None):
        super().__init__(info)
        staging_id = info.extra.get("staging_conn_id")
        if not staging_id:
            raise ValueError(f"warehouse connection {info.conn_id!r} (redshift) needs extra.staging_conn_id: an "
                             "'aws' connection whose extra.path is the S3 prefix batches are loaded through")
        self.driver = driver_of(info)
        self.staging = S3Staging(resolver(staging_id), info.extra.get("iam_role"))
        self.load = load or RedshiftLoad()

    def default_port(self) -> int:
        return 5439

    def connect(self) -> psycopg.Connection | ConnectorConnection:
        if self.driver == "redshift_connector":
            return connect_with_connector(self.info, self.default_port())
        return super().connect()

    @contextmanager
    def session(self) -> Iterator[RedshiftSession]:
        con = self.connect()
        try:
            yield RedshiftSession(con, self.staging, self.load)
        finally:
            con.close()


class RedshiftSession(JoinsNested, PostgresSession):
    """PostgreSQL's session logic where Redshift shares it; Redshift's own statements where it does not.

    A transaction asked for inside another joins it (JoinsNested before PostgresSession): psycopg would nest it as a
    SAVEPOINT, which Redshift refuses, and a batch's replace, its merge and its column probe each ask for one."""

    dialect = DIALECT
    loads_chunks = False  # its loads go through S3 staging, batch by batch

    def __init__(self, con: psycopg.Connection | ConnectorConnection, staging: S3Staging, load: Load):
        super().__init__(con)
        self.staging, self.load = staging, load
        self.statements: list[str] = []  # every statement sent, credentials masked (the tests parse them)

    def outermost_transaction(self) -> AbstractContextManager[None]:
        return self.con.transaction()

    def index_batch_columns(self, schema: str, table: str, added: BatchColumns) -> None:
        """Nothing: Redshift has no CREATE INDEX (its tables are read by zone maps over their sort order)."""

    def record(self, sql: str) -> None:
        self.statements.append(scrub_known(sql, self.staging.secrets))

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        self.record(sql)
        try:
            return super().execute(sql, params)
        except Exception as exc:
            raise type(exc)(scrub_known(str(exc), self.staging.secrets)) from None

    # -- reading inputs -----------------------------------------------------------------------
    def expose(self, name: str, relation: ArrowSource) -> str:
        """Parquet to S3, COPY into a temp table, the staged files removed."""
        target = quote(name, DIALECT)
        cols = ", ".join(f"{quote(f.name, DIALECT)} {redshift_type(f.type, f.name)}" for f in relation.schema)
        prefix = self.staging.new_prefix("in")
        try:
            uri = self.staging.put(prefix, relation.schema, iter(record_batches(relation)))
            self.execute(f"DROP TABLE IF EXISTS {target}")
            self.execute(f"CREATE TEMP TABLE {target} ({cols})")
            self.load.copy_in(self, target, uri)
        finally:
            self.staging.remove(prefix)
        return target

    def expose_batch(self, name: str, schema: str, table: str, batch_date: date) -> str:
        """Redshift has no temp views: one batch copied into a temp table, without its batch_date column."""
        batch_date = daily_only(batch_date, "Redshift")
        cols = [c for c, _ in (self.table_columns(schema, table) or []) if c != "batch_date"]
        if not cols:
            raise LookupError(f"warehouse table {schema}.{table} does not exist: did the step that writes it run?")
        target = quote(name, DIALECT)
        self.execute(f"DROP TABLE IF EXISTS {target}")
        self.execute(f"CREATE TEMP TABLE {target} AS SELECT {', '.join(quote(c, DIALECT) for c in cols)} "
                     f"FROM {qualified(schema, table, DIALECT)} WHERE batch_date = DATE '{batch_date.isoformat()}'")
        return target

    def expose_history(self, name: str, schema: str, table: str, first: date | None, last: date) -> str:
        """No temp views, and copying months of history into a temp table costs a scan: a derived table."""
        return f"(SELECT * FROM {qualified(schema, table, DIALECT)} WHERE {history_filter(first, last)})"

    # -- schema ------------------------------------------------------------------------------
    def columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """From the result's description (type OIDs, as Redshift's leader node reports them): no temp table."""
        with self.con.cursor() as cur:
            sql = f"SELECT * FROM ({select_sql}) AS _dagspec_q LIMIT 0"
            self.record(sql)
            cur.execute(sql, params or None)
            return [(d.name, column_type(d.type_code, d.precision, d.scale)) for d in cur.description]

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        rows = self.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %(s)s AND c.relname = %(t)s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            {"s": schema, "t": table})
        return [(r[0], r[1]) for r in rows] or None

    # -- writing ----------------------------------------------------------------------------
    def replace_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                      keep: int | None = None, after: Sequence[str] = ()) -> int:
        batch_date = daily_only(batch_date, "Redshift")
        count = super().replace_batch(schema, table, batch_date, select_sql, params, keep, after)
        self.execute(f"ANALYZE {qualified(schema, table, DIALECT)}")  # outside the transaction, as Redshift prefers
        return count

    def merge_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                    key: list[str] | None) -> int:
        batch_date = daily_only(batch_date, "Redshift")
        if key is None:
            return super().merge_batch(schema, table, batch_date, select_sql, params, None)
        target = qualified(schema, table, DIALECT)
        bound = {**params, "batch_date": batch_date}
        staged = quote("_dagspec_merge", DIALECT)
        with self.transaction():
            cols = self.prepare_target(schema, table, select_sql, params)
            missing = [k for k in key if k not in cols]
            if missing:
                raise ValueError(f"merge key column(s) {', '.join(missing)} are not in the result")
            keys = ", ".join(quote(k, DIALECT) for k in key)
            col_list = ", ".join(quote(c, DIALECT) for c in cols)
            self.execute(f"DROP TABLE IF EXISTS {staged}")
            self.execute(f"CREATE TEMP TABLE {staged} AS SELECT *, CAST(%(batch_date)s AS DATE) AS batch_date "
                         f"FROM ({select_sql}) AS _dagspec_src", bound)
            dupes = self.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM {staged}")[0][0]
            if dupes:
                raise ValueError(f"the result has {dupes} duplicate row(s) on the merge key ({', '.join(key)})")
            on = " AND ".join(f"{target}.{quote(k, DIALECT)} = {staged}.{quote(k, DIALECT)}" for k in key)
            self.execute(f"DELETE FROM {target} USING {staged} WHERE {on}")
            self.execute(f"INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {staged}")
            self.execute(f"DROP TABLE {staged}")
            count = self.execute(f"SELECT count(*) FROM {target} WHERE batch_date = %(batch_date)s",
                                 {"batch_date": batch_date})[0][0]
        self.execute(f"ANALYZE {target}")
        return count

    def replace_table(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any]) -> int:
        """The new table beside the old, then drop + rename in one transaction (Redshift DDL is transactional)."""
        batch_date = daily_only(batch_date, "Redshift")
        target = qualified(schema, table, DIALECT)
        new_name = f"_dagspec_new_{table}"[:127]
        new = qualified(schema, new_name, DIALECT)
        with self.transaction():
            if any(n == "batch_date" for n, _ in self.columns(select_sql, params)):
                raise ValueError("the query returns a column named batch_date; dagspec adds it: rename or drop yours")
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, DIALECT)}")
            self.execute(f"DROP TABLE IF EXISTS {new}")
            self.execute(f"CREATE TABLE {new} AS SELECT *, CAST(%(batch_date)s AS DATE) AS batch_date "
                         f"FROM ({select_sql}) AS _dagspec_src", {**params, "batch_date": batch_date})
            if self.relation_kind(schema, table) == "v":
                self.execute(f"DROP VIEW {target}")
            self.execute(f"DROP TABLE IF EXISTS {target}")
            self.execute(f"ALTER TABLE {new} RENAME TO {quote(table, DIALECT)}")
            count = self.execute(f"SELECT count(*) FROM {target}")[0][0]
        self.execute(f"ANALYZE {target}")
        return count

    # -- reading results ----------------------------------------------------------------------
    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """UNLOAD to S3 as Parquet and read that back: Redshift's way out, in bounded memory."""
        from dagspec.warehouse.postgres import arrow_type

        schema = pa.schema([pa.field(n, arrow_type(t)) for n, t in self.columns(select_sql, params)])
        prefix = self.staging.new_prefix("out")
        self.load.unload(self, inline(select_sql, params), f"s3://{prefix}/")

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in self.staging.read(prefix):
                    yield pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in schema],
                                                     schema=schema)
            finally:
                self.staging.remove(prefix)

        return pa.RecordBatchReader.from_batches(schema, batches())


def inline(select_sql: str, params: dict[str, Any]) -> str:
    """UNLOAD takes its query as a string, so it cannot bind parameters: dates, times and numbers dagspec
    computed are written as typed literals; text is refused (it would need quoting inside a quoted query)."""
    out = select_sql
    for name, value in params.items():
        token = f"%({name})s"
        if token not in out:
            continue
        if isinstance(value, datetime):
            text = f"{'TIMESTAMPTZ' if value.tzinfo else 'TIMESTAMP'} '{value.isoformat(sep=' ')}'"
        elif isinstance(value, date):
            text = f"DATE '{value.isoformat()}'"
        elif isinstance(value, bool):
            text = "TRUE" if value else "FALSE"
        elif isinstance(value, (int, float, Decimal)):
            text = repr(value) if isinstance(value, float) else str(value)
        elif value is None:
            text = "NULL"
        else:
            raise ValueError(f"parameter {name!r} is {type(value).__name__}: a Redshift UNLOAD query can only carry "
                             "dates, times and numbers; read text parameters from a table instead")
        out = out.replace(token, text)
    return out


def _literal(text: str) -> str:
    """The body of a Redshift string literal: quotes doubled, and backslashes (an escape character there)."""
    return str(text).replace("\\", "\\\\").replace("'", "''")
