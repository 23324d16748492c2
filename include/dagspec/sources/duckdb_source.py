"""DuckDB database files: the file attached read-only to an in-memory DuckDB, the result streamed as Arrow.

DuckDB hands its own column types to Arrow exactly (DECIMAL(p,s) -> decimal128(p,s), TIMESTAMP,
TIMESTAMPTZ in UTC, DATE, BLOB, text), so both modes go through duckdb_scan.stream: record batches
of `chunk_rows` rows with a small bounded prefetch, never the whole result.

The file is opened READ_ONLY: many readers may share it and nothing here can write to it. DuckDB
allows one writing process per file, so while a writer (the warehouse, say) holds it, the extract
waits for it up to LOCK_WAIT_SECONDS, as the warehouse does for its own lock. Once the file is
attached the session is locked down (no file access, no settings), so a query can only read it.

The catalog is read first, so a missing file, table or column is a clear error before any scan.
Query mode binds `:from_date`/`:to_date` (TIMESTAMPTZ) and `:batch_date` (DATE) as parameters.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo, database_file
from dagspec.errors import StepFailed
from dagspec.sources import duckdb_scan
from dagspec.sources.contract import Rows
from dagspec.sources.postgres import window_edge
from dagspec.sources.postgres_copy import PLACEHOLDER
from dagspec.spec.model import SqlSource
from dagspec.sql import quote, select_window
from dagspec.windows import Batch

if TYPE_CHECKING:
    import re

    from duckdb import DuckDBPyConnection

log = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = float(os.environ.get("DAGSPEC_DUCKDB_SOURCE_LOCK_WAIT", "120"))
CATALOG = "src"
# The window edges are instants: compare them (and naive TIMESTAMPs) in UTC.
SESSION = {"TimeZone": "UTC"}


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str

    @property
    def kind(self) -> str:
        """The column's type in the terms postgres.window_edge uses for window edges."""
        if self.data_type == "DATE":
            return "date"
        if self.data_type.startswith("TIMESTAMP") and "TIME ZONE" not in self.data_type:
            return "timestamp"  # TIMESTAMP, TIMESTAMP_S/_MS/_NS: naive
        return self.data_type.lower()


def read_batches(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int) -> Rows:
    path = database_file(info)
    if not Path(path).is_file():
        raise StepFailed(f"source connection {info.conn_id!r}: DuckDB file {path!r} does not exist")
    con = attach(info, path)
    try:
        if source.query is not None:
            sql, params = _bind(source.query, batch)
            return duckdb_scan.stream(con, sql, params, chunk_rows)
        schema, table_columns = catalog(con, info, source)
        columns = [table_columns[c.lower()] for c in source.columns or table_columns]
        window, edges = None, ()
        if source.incremental_column:
            column = table_columns[source.incremental_column.lower()]
            window, edges = column.name, (window_edge(column.kind, batch.from_at),
                                          window_edge(column.kind, batch.to_at))
        sql, params = select_window(f"{CATALOG}.{quote(schema, 'duckdb')}.{quote(source.table, 'duckdb')}",
                                    [quote(c.name, "duckdb") for c in columns], window, edges, mark=None)
    except BaseException:
        con.close()
        raise
    return duckdb_scan.stream(con, sql, params, chunk_rows)


def attach(info: ConnectionInfo, path: str) -> DuckDBPyConnection:
    """An in-memory DuckDB with the file attached read-only as the default catalog, then locked down."""
    import duckdb

    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.2
    while True:
        con = duckdb_scan.connect(None, SESSION)
        try:
            con.execute(f"ATTACH '{duckdb_scan.literal(path)}' AS {CATALOG} (TYPE duckdb, READ_ONLY)")
            break
        except duckdb.IOException as exc:
            con.close()
            if not any(s in str(exc).lower() for s in ("could not set lock", "conflicting lock")):
                raise
            if time.monotonic() + delay > deadline:
                raise StepFailed(
                    f"source connection {info.conn_id!r}: DuckDB file {path!r} is locked by a writing process "
                    f"(DuckDB allows one writer or many readers) and stayed locked for {LOCK_WAIT_SECONDS:g}s"
                ) from None
            log.info("DuckDB file %s is locked by a writer; waiting %.1fs", path, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except BaseException:
            con.close()
            raise
    try:
        con.execute(f"USE {CATALOG}")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def catalog(con: DuckDBPyConnection, info: ConnectionInfo, source: SqlSource) -> tuple[str, dict[str, Column]]:
    """(schema the table lives in, its columns by lower-cased name; DuckDB names are case-insensitive)."""
    rows = con.execute(
        "SELECT schema_name, column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND lower(schema_name) = lower(COALESCE(?, current_schema())) "
        "AND lower(table_name) = lower(?) ORDER BY column_index",
        [CATALOG, source.schema_, source.table],
    ).fetchall()
    if not rows:
        where = f"{source.schema_}.{source.table}" if source.schema_ else source.table
        raise StepFailed(f"source connection {info.conn_id!r}: table {where!r} does not exist")
    by_name = {r[1].lower(): Column(r[1], r[2]) for r in rows}
    wanted = [*(source.columns or []), *([source.incremental_column] if source.incremental_column else [])]
    missing = [c for c in wanted if c.lower() not in by_name]
    if missing:
        raise StepFailed(
            f"source connection {info.conn_id!r}: table {source.table!r} has no column(s) "
            f"{', '.join(map(repr, missing))}; it has {', '.join(c.name for c in by_name.values())}"
        )
    return rows[0][0], by_name


def _bind(query: str, batch: Batch) -> tuple[str, list[object]]:
    """`:from_date`, `:to_date`, `:batch_date` as DuckDB's numbered parameters ($1, ...) and their values."""
    values = batch.params()
    used: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in used:
            used.append(match.group(1))
        return f"${used.index(match.group(1)) + 1}"

    sql = PLACEHOLDER.sub(number, query.strip().rstrip(";").rstrip())
    return sql, [values[name] for name in used]
