"""PostgreSQL: table mode through DuckDB's postgres scanner (parallel binary COPY, exact types).

Measured on TPC-H lineitem SF1 (bench/extract_bench.py, and the anchors in DESIGN.md) this is the
fastest bounded-memory path here; ConnectorX, ADBC and psycopg COPY are slower, use more memory or
lose NUMERIC's scale.
psycopg first reads the catalog, so a missing table or column is a clear error before any scan, and
columns the scanner would read inexactly (NUMERIC without a precision, or wider than 38 digits,
which DuckDB turns into DOUBLE) send the read through COPY (postgres_copy.py), which keeps their
digits as text.
Query mode cannot use the scanner (it cannot bind parameters into its COPY, and a query's
`:from_date`/`:to_date` are always bound, never pasted): it reads `COPY (query)` itself
(postgres_copy.py), or the SQLAlchemy path for result types that COPY's text cannot carry exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo
from dagspec.errors import StepFailed
from dagspec.sources import duckdb_scan
from dagspec.sources.contract import Rows
from dagspec.spec.model import SqlSource
from dagspec.sql import quote, select_window
from dagspec.utc import LIBPQ_OPTIONS
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import date, datetime

    import pyarrow as pa

CONNECT_TIMEOUT = 10
MAX_DECIMAL_DIGITS = 38


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    typmod: int

    @property
    def exact_in_duckdb(self) -> bool:
        if self.type_name != "numeric":
            return True
        if self.typmod < 0:
            return False  # unconstrained NUMERIC: any number of digits
        precision = ((self.typmod - 4) >> 16) & 0xFFFF
        return precision <= MAX_DECIMAL_DIGITS


def read_batches(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int) -> Rows:
    if source.query is not None:
        from dagspec.sources import postgres_copy, sqlalchemy_source

        return postgres_copy.read_batches(info, source, batch, chunk_rows, conninfo(info)) or (
            sqlalchemy_source.read_batches(info, source, batch, chunk_rows)
        )

    namespace, table_columns = catalog(info, source)
    columns = [table_columns[c] for c in source.columns or table_columns]
    if not all(c.exact_in_duckdb for c in columns):
        return _exact_copy(info, source, batch, chunk_rows, namespace, columns)

    edges = ()
    if source.incremental_column:
        kind = table_columns[source.incremental_column].type_name
        edges = (_bound(kind, batch.from_at), _bound(kind, batch.to_at))
    sql, params = select_window(f"pg.{quote(namespace, 'duckdb')}.{quote(source.table, 'duckdb')}",
                                            [quote(c.name, "duckdb") for c in columns], source.incremental_column, edges)

    # The parallel scan over ctid ranges does not keep the table's row order anyway; letting DuckDB write
    # rows as they come measured the same speed and ~70 MB less memory on lineitem.
    con = duckdb_scan.connect("postgres_scanner", {"preserve_insertion_order": False})
    try:
        con.execute(
            f"ATTACH '{duckdb_scan.literal(conninfo(info))}' AS pg "
            f"(TYPE postgres, READ_ONLY, SCHEMA '{duckdb_scan.literal(namespace)}')"
        )
    except BaseException:
        con.close()
        raise
    return duckdb_scan.stream(con, sql, params, chunk_rows, direct=True)


def _exact_copy(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int, namespace: str, columns: list[Column]
                ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The table as a query through COPY, which carries every NUMERIC digit (as text where decimal128 cannot)."""
    from dagspec.sources import postgres_copy, sqlalchemy_source

    sql = (f"SELECT {', '.join(quote(c.name, 'postgres') for c in columns)} "
           f"FROM {quote(namespace, 'postgres')}.{quote(source.table, 'postgres')}")
    if source.incremental_column:
        col = quote(source.incremental_column, "postgres")
        sql += f" WHERE {col} >= :from_date AND {col} < :to_date"
    return postgres_copy.read_query(sql, batch, chunk_rows, conninfo(info)) or (
        sqlalchemy_source.read_batches(info, source, batch, chunk_rows)
    )


def conninfo(info: ConnectionInfo) -> str:
    """A libpq keyword/value string (values quoted, so a password may hold any character)."""
    parts = {
        "host": info.host or "127.0.0.1",
        "port": info.port or 5432,
        "user": info.login,
        "password": info.password,
        "dbname": info.schema,
        "connect_timeout": info.extra.get("connect_timeout", CONNECT_TIMEOUT),
        "sslmode": info.extra.get("sslmode"),
        "application_name": "dagspec",
        "options": LIBPQ_OPTIONS,
    }
    return " ".join(f"{k}={_libpq_value(v)}" for k, v in parts.items() if v not in (None, ""))


def _libpq_value(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def catalog(info: ConnectionInfo, source: SqlSource) -> tuple[str, dict[str, Column]]:
    """(schema the table lives in, its columns by name), or StepFailed naming what is missing."""
    import psycopg

    target = quote(source.table, "postgres")
    if source.schema_:
        target = f"{quote(source.schema_, 'postgres')}.{target}"
    with psycopg.connect(conninfo(info), autocommit=True) as conn:
        found = conn.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = to_regclass(%s)",
            [target],
        ).fetchone()
        if found is None:
            where = f"{source.schema_}.{source.table}" if source.schema_ else source.table
            raise StepFailed(f"source connection {info.conn_id!r}: table {where!r} does not exist")
        rows = conn.execute(
            "SELECT a.attname, t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [target],
        ).fetchall()
    by_name = {r[0]: Column(*r) for r in rows}
    wanted = [*(source.columns or []), *([source.incremental_column] if source.incremental_column else [])]
    missing = [c for c in wanted if c not in by_name]
    if missing:
        raise StepFailed(
            f"source connection {info.conn_id!r}: table {source.table!r} has no column(s) "
            f"{', '.join(map(repr, missing))}; it has {', '.join(by_name)}"
        )
    return found[0], by_name


def _bound(type_name: str, moment: datetime) -> date | datetime:
    """The window edge in the column's own type, so PostgreSQL compares like with like (and uses its index)."""
    if type_name == "timestamp":
        return moment.replace(tzinfo=None)
    if type_name == "date":
        return moment.date()
    return moment
