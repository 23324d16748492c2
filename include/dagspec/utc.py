"""Every database session dagspec opens runs in UTC, whatever time zone the host is set to.

The window edges are UTC instants and staged timestamps are UTC; a session in the host's zone would
render TIMESTAMPTZ in that zone (DuckDB's Arrow export takes the session's TimeZone as the column's
zone, so a PostgreSQL extract under TZ=Europe/Berlin failed its schema check) and compare naive
timestamps against shifted edges. Each driver spells the setting differently; they are all here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

# libpq's `options`: the server applies it when the session starts (psycopg, DuckDB's postgres scanner).
LIBPQ_OPTIONS = "-c TimeZone=UTC"
MYSQL_INIT = "SET time_zone = '+00:00'"
DUCKDB_SETTING = "TimeZone"


def duckdb_utc(con: DuckDBPyConnection) -> DuckDBPyConnection:
    """`con` with its TimeZone set to UTC (DuckDB takes it only after connecting: ICU must be loaded first)."""
    con.execute(f"SET {DUCKDB_SETTING} = 'UTC'")
    return con
