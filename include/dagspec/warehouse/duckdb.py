"""The embedded warehouse: one DuckDB file. Single writer, so connections wait for the lock."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.sql import qualified, quote
from dagspec.utc import duckdb_utc
from dagspec.warehouse import materialize
from dagspec.warehouse.base import SchemaDrift, columns_diff, prune_sql
from dagspec.warehouse.contract import ArrowSource

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

log = logging.getLogger(__name__)
LOCK_WAIT_SECONDS = 600


class DuckDBWarehouse:
    dialect = "duckdb"

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.2
        while True:
            try:
                con = duckdb_utc(duckdb.connect(str(self.path)))
                break
            except duckdb.IOException as exc:
                # Another task holds the file; DuckDB allows one writing process at a time.
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                log.info("warehouse %s is busy (another task writes to it); waiting %.1fs", self.path, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            yield DuckDBSession(con)
        finally:
            con.close()


class DuckDBSession:
    dialect = "duckdb"

    def __init__(self, con: DuckDBPyConnection):
        self.con = con

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction; the error that ended it is the one raised. A COMMIT that fails (disk full) has
        already ended the transaction, so the ROLLBACK after it fails too ("no transaction is active"):
        that second error is only logged, never put in place of "No space left on device"."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
            self.con.execute("COMMIT")
        except BaseException:
            try:
                self.con.execute("ROLLBACK")
            except Exception as exc:
                log.debug("ROLLBACK after a failed transaction: %s", exc)
            raise

    def expose(self, name: str, relation: ArrowSource) -> str:
        """Make an Arrow dataset/table/reader queryable as `name` (DuckDB scans it lazily, in batches)."""
        self.con.register(name, relation)
        return quote(name, self.dialect)

    def expose_batch(self, name: str, schema: str, table: str, batch_date: date) -> str:
        """A view of one batch of a warehouse table, without its batch_date column."""
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote(name, self.dialect)} AS "
            f"SELECT * EXCLUDE (batch_date) FROM {qualified(schema, table, self.dialect)} "
            f"WHERE batch_date = DATE '{batch_date.isoformat()}'"  # a date object's isoformat, not user text
        )
        return quote(name, self.dialect)

    def columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        rel = self.con.execute(f"DESCRIBE {select_sql}", params).fetchall()
        return [(r[0], r[1]) for r in rel]

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
        return [(r[0], r[1]) for r in rows] or None

    def replace_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                      keep: int | None = None) -> int:
        """Delete-then-insert one batch in one transaction; the SELECT must not produce batch_date itself."""
        target = qualified(schema, table, self.dialect)
        batch_sql = f"SELECT *, CAST($batch_date AS DATE) AS batch_date FROM ({select_sql}) AS _dagspec_src"
        bound = {**params, "batch_date": batch_date}
        produced = self.columns(select_sql, params)
        if any(name == "batch_date" for name, _ in produced):
            raise ValueError("the query returns a column named batch_date; dagspec adds it: rename or drop yours")
        with self.transaction():
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, self.dialect)}")
            existing = self.table_columns(schema, table)
            wanted = produced + [("batch_date", "DATE")]
            if existing is None:
                self.con.execute(f"CREATE TABLE {target} AS {batch_sql} LIMIT 0", bound)
            elif columns_diff(existing, wanted):
                raise SchemaDrift(f"{schema}.{table}", columns_diff(existing, wanted))
            self.con.execute(f"DELETE FROM {target} WHERE batch_date = $batch_date", {"batch_date": batch_date})
            self.con.execute(f"INSERT INTO {target} BY NAME {batch_sql}", bound)
            if keep is not None:
                self.con.execute(prune_sql(target, keep))
            rows = self.con.execute(
                f"SELECT count(*) FROM {target} WHERE batch_date = $batch_date", {"batch_date": batch_date}
            ).fetchone()[0]
        return rows

    def merge_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                    key: list[str]) -> int:
        return materialize.merge_batch(self, schema, table, batch_date, select_sql, params, key)

    def replace_table(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any]) -> int:
        return materialize.replace_table(self, schema, table, batch_date, select_sql, params)

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        materialize.create_view(self, schema, table, select_sql)

    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        return self.con.execute(select_sql, params).fetch_record_batch(batch_rows)
