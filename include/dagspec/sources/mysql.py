"""MySQL and MariaDB: table mode over the text protocol, parsed in bulk (mysql_wire.py).

Measured on TPC-H lineitem SF0.2 (bench/extract_bench.py): DuckDB's mysql scanner reads through
prepared statements, which cost MariaDB ~3x the server CPU, and pymysql's unbuffered cursor decodes
every value in Python (~4x slower still). pymysql first reads the catalog, so a missing table or
column is a clear error before any scan. Column types mysql_wire does not take (TIME, BIT, spatial)
go through DuckDB's scanner; DECIMAL wider than 38 digits (which the scanner turns into DOUBLE) and
query mode go to the SQLAlchemy path with an unbuffered cursor.
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
from dagspec.utc import MYSQL_INIT
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import date, datetime

    import pyarrow as pa
    import pymysql

CONNECT_TIMEOUT = 10
MAX_DECIMAL_DIGITS = 38
# TIMESTAMP columns are instants: read in UTC (the MySQL session) and cast to TIMESTAMPTZ (DuckDB's session
# in UTC too), they become exact timestamp[us, tz=UTC].
# The scanner's defaults suit interactive queries, not extracts: SQL_BUFFER_RESULT makes the server copy
# the whole result into a temporary table before sending a row (disk on the source, time), and its
# MAX_EXECUTION_TIME hint (at most 5 minutes) would cut a long extract on MySQL.
SESSION = {"mysql_session_time_zone": "+00:00", "TimeZone": "UTC", "mysql_time_as_time": True,
           "mysql_sql_buffer_result": False, "mysql_query_timeout_enabled": False}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    precision: int | None
    scale: int | None = None
    column_type: str = ""

    @property
    def wire_type(self) -> pa.DataType | None:
        from dagspec.sources.mysql_wire import arrow_type

        return arrow_type(self.data_type, self.column_type, self.precision, self.scale)

    @property
    def exact_in_duckdb(self) -> bool:
        return not (self.data_type == "decimal" and (self.precision or 0) > MAX_DECIMAL_DIGITS)


def read_batches(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int) -> Rows:
    if source.query is not None:
        return _generic(info, source, batch, chunk_rows)
    database, table_columns = catalog(info, source)
    columns = [table_columns[c] for c in source.columns or table_columns]
    if not all(c.exact_in_duckdb for c in columns):
        return _generic(info, source, batch, chunk_rows)

    edges = ()
    if source.incremental_column:
        kind = table_columns[source.incremental_column].data_type
        edges = (_bound(kind, batch.from_at), _bound(kind, batch.to_at))
    if all(c.wire_type is not None for c in columns):
        return _over_the_wire(info, database, source, columns, edges, chunk_rows)
    return _duckdb_scan(info, database, source, columns, edges, chunk_rows)


def _duckdb_scan(info: ConnectionInfo, database: str, source: SqlSource, columns: list[Column], edges: Sequence[object],
                 chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    sql, params = select_window(f"my.{quote(database, 'duckdb')}.{quote(source.table, 'duckdb')}",
                           [_selected(c) for c in columns], source.incremental_column, edges, mark=None)

    con = duckdb_scan.connect("mysql_scanner", SESSION)
    try:
        con.execute(_secret(info, database))
        con.execute("ATTACH '' AS my (TYPE mysql, SECRET dagspec_source, READ_ONLY)")
    except BaseException:
        con.close()
        raise
    return duckdb_scan.stream(con, sql, params, chunk_rows, direct=True)


def _over_the_wire(info: ConnectionInfo, database: str, source: SqlSource, columns: list[Column], edges: Sequence[object],
                   chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from dagspec.sources import mysql_wire

    sql, params = select_window(f"{quote(database, 'mysql')}.{quote(source.table, 'mysql')}",
                                [quote(c.name, "mysql") for c in columns], source.incremental_column, edges,
                                dialect="mysql", mark="%s")
    wire = [mysql_wire.WireColumn(c.name, c.wire_type) for c in columns]
    return mysql_wire.stream(connect(info, database), sql, params, wire, chunk_rows)


def _selected(column: Column) -> str:
    name = quote(column.name, "duckdb")
    return f"CAST({name} AS TIMESTAMPTZ) AS {name}" if column.data_type == "timestamp" else name


def _generic(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int
             ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from dagspec.sources import sqlalchemy_source

    return sqlalchemy_source.read_batches(info, source, batch, chunk_rows)


def _secret(info: ConnectionInfo, database: str) -> str:
    """A temporary, in-memory DuckDB secret: the password never appears in a connection string or log."""
    lit = duckdb_scan.literal
    parts = [
        "TYPE mysql",
        f"HOST '{lit(info.host or '127.0.0.1')}'",
        f"PORT {int(info.port or 3306)}",
        f"DATABASE '{lit(database)}'",
    ]
    if info.login:
        parts.append(f"USER '{lit(info.login)}'")
    if info.password:
        parts.append(f"PASSWORD '{lit(info.password)}'")
    return f"CREATE OR REPLACE TEMPORARY SECRET dagspec_source ({', '.join(parts)})"


def connect(info: ConnectionInfo, database: str | None = None) -> pymysql.connections.Connection:
    """A session in UTC: TIMESTAMP values come as UTC text, whatever the server's or host's zone."""
    import pymysql

    return pymysql.connect(
        host=info.host or "127.0.0.1",
        port=int(info.port or 3306),
        user=info.login,
        password=info.password or "",
        database=database or info.schema,
        connect_timeout=int(info.extra.get("connect_timeout", CONNECT_TIMEOUT)),
        charset="utf8mb4",
        init_command=MYSQL_INIT,
    )


def catalog(info: ConnectionInfo, source: SqlSource) -> tuple[str, dict[str, Column]]:
    """(database the table lives in, its columns by name), or StepFailed naming what is missing."""
    conn = connect(info)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COALESCE(%s, DATABASE()), column_name, data_type, numeric_precision, numeric_scale, "
                "column_type "
                "FROM information_schema.columns "
                "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s ORDER BY ordinal_position",
                [source.schema_, source.schema_, source.table],
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    if not rows:
        where = f"{source.schema_}.{source.table}" if source.schema_ else source.table
        raise StepFailed(f"source connection {info.conn_id!r}: table {where!r} does not exist")
    by_name = {r[1]: Column(r[1], r[2].lower(), r[3], r[4], r[5].lower()) for r in rows}
    wanted = [*(source.columns or []), *([source.incremental_column] if source.incremental_column else [])]
    missing = [c for c in wanted if c not in by_name]
    if missing:
        raise StepFailed(
            f"source connection {info.conn_id!r}: table {source.table!r} has no column(s) "
            f"{', '.join(map(repr, missing))}; it has {', '.join(by_name)}"
        )
    return rows[0][0], by_name


def _bound(data_type: str, moment: datetime) -> date | datetime:
    """The window edge as MySQL compares it: naive UTC for DATETIME and TIMESTAMP (session time zone UTC)."""
    if data_type == "date":
        return moment.date()
    return moment.replace(tzinfo=None)
