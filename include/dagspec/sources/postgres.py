"""PostgreSQL: table mode through DuckDB's postgres scanner (parallel binary COPY, exact types).

Measured on TPC-H lineitem SF1 (bench/extract_bench.py, and the anchors in DESIGN.md) this is the
fastest bounded-memory path here; ConnectorX, ADBC and psycopg COPY are slower, use more memory or
lose NUMERIC's scale.
psycopg first reads the catalog, so a missing table or column is a clear error before any scan, and
columns the scanner would read inexactly (NUMERIC without a precision, or wider than 38 digits,
which DuckDB turns into DOUBLE) send the read through COPY (postgres_copy.py), which keeps their
digits as text.
A window small enough for an index (the common run: one day of a big table) is read by one query: the
ctid-parallel scan sends one range query per 1,000 pages, and each fetches its slice of the window through
the index again (TPC-H lineitem SF1, one day: 108 queries, 1.19 s of the stage against 0.70 s). PostgreSQL's
own planner decides: when it would read the window through an index and expects at most
SINGLE_QUERY_MAX_ROWS rows, the scan is one COPY; otherwise (a whole table, a year of it) it is parallel.
That one COPY is psycopg's (postgres_small.py), on the connection that read the catalog and the plan, so
the scanner is not even loaded, unless a column's type is one that path does not read exactly.
Query mode cannot use the scanner (it cannot bind parameters into its COPY, and a query's
`:from_date`/`:to_date` are always bound, never pasted): it reads `COPY (query)` itself
(postgres_copy.py), or the SQLAlchemy path for result types that COPY's text cannot carry exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo
from dagspec.errors import StepFailed
from dagspec.sources import duckdb_scan, postgres_copy, postgres_small
from dagspec.sources.contract import Rows
from dagspec.spec.model import SqlSource
from dagspec.sql import quote, select_window
from dagspec.utc import LIBPQ_OPTIONS
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import date, datetime

    import psycopg
    import pyarrow as pa

CONNECT_TIMEOUT = 10
MAX_DECIMAL_DIGITS = 38
# Measured on lineitem SF1 (bench/window_bench.py): one query won at 76k rows (1.10 s vs 1.73 s) and lost at
# 911k (3.19 s vs 2.24 s) on 2 cores.
SINGLE_QUERY_MAX_ROWS = 200_000
INDEX_SCANS = frozenset({"Index Scan", "Index Only Scan", "Bitmap Heap Scan"})
# Incremental column types whose window edges (window_edge) bind as themselves on the small path.
WINDOW_TYPES = frozenset({"date", "timestamp", "timestamptz"})
# The catalog the last read took, by (conninfo, schema, table): the NULL-key count after it needs the same facts.
_last_catalog: dict[tuple[str, str | None, str], tuple[str, dict[str, Column]]] = {}


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    typmod: int
    not_null: bool = False

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
        from dagspec.sources import sqlalchemy_source

        return postgres_copy.read_batches(info, source, batch, chunk_rows, conninfo(info)) or (
            sqlalchemy_source.read_batches(info, source, batch, chunk_rows)
        )

    found = probe(info, source, batch, chunk_rows)
    if found.rows is not None:
        return found.rows
    namespace, columns, edges = found.namespace, found.columns, found.edges
    if not all(c.exact_in_duckdb for c in columns):
        return _exact_copy(info, source, batch, chunk_rows, namespace, columns)

    sql, _ = select_window(f"pg.{quote(namespace, 'duckdb')}.{quote(source.table, 'duckdb')}",
                           [quote(c.name, "duckdb") for c in columns], source.incremental_column, edges, mark=None)

    # The parallel scan over ctid ranges does not keep the table's row order anyway; letting DuckDB write
    # rows as they come measured the same speed and ~70 MB less memory on lineitem.
    settings: dict[str, object] = {"preserve_insertion_order": False}
    if found.plan == "single":
        settings["pg_use_ctid_scan"] = False
    con = duckdb_scan.connect("postgres_scanner", settings)
    try:
        con.execute(
            f"ATTACH '{duckdb_scan.literal(conninfo(info))}' AS pg "
            f"(TYPE postgres, READ_ONLY, SCHEMA '{duckdb_scan.literal(namespace)}')"
        )
    except BaseException:
        con.close()
        raise
    # A window planned as one query streams through pyarrow's writer, as the small path's rows do
    # (postgres_small.py): the same window stages the same bytes whichever of the two read it.
    return duckdb_scan.stream(con, sql, [], chunk_rows, direct=found.plan != "single")


@dataclass(frozen=True)
class Probe:
    namespace: str  # the schema the table lives in
    columns: list[Column]  # the columns read
    edges: tuple  # the window's edges in the incremental column's type, or ()
    plan: str  # "single" or "parallel" (scan_plan)
    rows: Rows | None = None  # a small window's rows, already read through psycopg (postgres_small.py)


def probe(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int) -> Probe:
    """On one connection and in one snapshot: the catalog, the planner's choice, and for a small window of
    types the small path reads exactly, its rows (which then own the connection)."""
    import psycopg

    conn = psycopg.connect(conninfo(info))
    try:
        postgres_copy.begin(conn)
        namespace, table_columns = catalog_on(conn, info, source)
        _last_catalog[_catalog_key(info, source)] = (namespace, table_columns)
        columns = [table_columns[c] for c in source.columns or table_columns]
        edges, plan, kind = (), "parallel", None
        if source.incremental_column:
            kind = table_columns[source.incremental_column].type_name
            edges = (window_edge(kind, batch.from_at), window_edge(kind, batch.to_at))
            plan = scan_plan_on(conn, namespace, source.table, source.incremental_column, edges)
        if plan == "single" and kind in WINDOW_TYPES and all(
                c.type_name in postgres_small.SMALL_TYPES and c.exact_in_duckdb for c in columns):
            col = quote(source.incremental_column, "postgres")
            small = postgres_small.read(conn, f"{quote(namespace, 'postgres')}.{quote(source.table, 'postgres')}",
                                        [quote(c.name, "postgres") for c in columns], f"{col} >= %s AND {col} < %s",
                                        edges, chunk_rows)
            if small is not None:
                return Probe(namespace, columns, edges, plan, small)
    except BaseException:
        conn.close()
        raise
    conn.close()
    return Probe(namespace, columns, edges, plan)


def scan_plan(info: ConnectionInfo, namespace: str, table: str, column: str, edges: tuple) -> str:
    """'single' when PostgreSQL would read the window through an index and expects few rows, else 'parallel'.
    DAGSPEC_PG_SCAN=single|parallel forces one (benchmarks, or a planner with stale statistics). Advice
    only: if the plan cannot be read, the parallel scan (right for any size) runs."""
    import psycopg

    try:
        with psycopg.connect(conninfo(info), autocommit=True) as conn:
            return scan_plan_on(conn, namespace, table, column, edges)
    except psycopg.Error:
        return "parallel"


def scan_plan_on(conn: psycopg.Connection, namespace: str, table: str, column: str, edges: tuple) -> str:
    import psycopg

    forced = os.environ.get("DAGSPEC_PG_SCAN", "auto")
    if forced in ("single", "parallel"):
        return forced
    sql = (f"EXPLAIN (FORMAT JSON) SELECT * FROM {quote(namespace, 'postgres')}.{quote(table, 'postgres')} "
           f"WHERE {quote(column, 'postgres')} >= %s AND {quote(column, 'postgres')} < %s")
    try:
        with conn.transaction():  # a savepoint inside the read's snapshot: a failed probe leaves it usable
            plan = conn.execute(sql, list(edges)).fetchone()[0][0]["Plan"]
    except (psycopg.Error, LookupError, TypeError):
        return "parallel"
    small = plan.get("Node Type") in INDEX_SCANS and plan.get("Plan Rows", SINGLE_QUERY_MAX_ROWS + 1) <= SINGLE_QUERY_MAX_ROWS
    return "single" if small else "parallel"


def null_key_rows(info: ConnectionInfo, source: SqlSource) -> int:
    """Rows whose incremental column is NULL: nothing is counted on a NOT NULL column."""
    import psycopg

    # The read just took the catalog in this task: asking again would cost a connection for the same answer.
    namespace, columns = _last_catalog.pop(_catalog_key(info, source), None) or catalog(info, source)
    if columns[source.incremental_column].not_null:
        return 0
    sql = (f"SELECT count(*) FROM {quote(namespace, 'postgres')}.{quote(source.table, 'postgres')} "
           f"WHERE {quote(source.incremental_column, 'postgres')} IS NULL")
    with psycopg.connect(conninfo(info), autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


def _exact_copy(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int, namespace: str, columns: list[Column]
                ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The table as a query through COPY, which carries every NUMERIC digit (as text where decimal128 cannot)."""
    from dagspec.sources import sqlalchemy_source

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

    with psycopg.connect(conninfo(info), autocommit=True) as conn:
        return catalog_on(conn, info, source)


def catalog_on(conn: psycopg.Connection, info: ConnectionInfo, source: SqlSource) -> tuple[str, dict[str, Column]]:
    target = quote(source.table, "postgres")
    if source.schema_:
        target = f"{quote(source.schema_, 'postgres')}.{target}"
    found = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(%s)",
        [target],
    ).fetchone()
    if found is None:
        where = f"{source.schema_}.{source.table}" if source.schema_ else source.table
        raise StepFailed(f"source connection {info.conn_id!r}: table {where!r} does not exist")
    rows = conn.execute(
        "SELECT a.attname, t.typname, a.atttypmod, a.attnotnull FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
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


def _catalog_key(info: ConnectionInfo, source: SqlSource) -> tuple[str, str | None, str]:
    return conninfo(info), source.schema_, source.table


def window_edge(type_name: str, moment: datetime) -> date | datetime:
    """The window edge in the column's own type, so PostgreSQL compares like with like (and uses its index)."""
    if type_name == "timestamp":
        return moment.replace(tzinfo=None)
    if type_name == "date":
        return moment.date()
    return moment
