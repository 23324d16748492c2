"""The embedded warehouse: one DuckDB file. Single writer, so connections wait for the lock."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.partitions import Key
from dagspec.sql import qualified, quote
from dagspec.utc import duckdb_utc
from dagspec.warehouse import materialize
from dagspec.warehouse.base import SchemaDrift, columns_diff, history_filter, prune_sql
from dagspec.warehouse.batch_columns import BatchColumns, dollar
from dagspec.warehouse.chunk_load import chunk_sql, counts_by_key, first_key, load_chunk
from dagspec.warehouse.contract import ArrowSource
from dagspec.warehouse.nesting import JoinsNested

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
        wait = lock_wait_seconds()
        asked = time.monotonic()
        deadline = asked + wait
        delay, told = 0.2, None
        while True:
            try:
                con = duckdb_utc(duckdb.connect(str(self.path)))
                break
            except duckdb.IOException as exc:
                # DuckDB allows one process at a time on the file, a read-only shell included.
                if "lock" not in str(exc).lower():
                    raise
                holder = lock_holder(str(exc))
                if time.monotonic() > deadline:
                    raise WarehouseBusy(f"warehouse {self.path} stayed locked for {wait:.0f}s: {holder}. "
                                        f"{BUSY_FIX}") from None
                if holder != told:  # once per holder, not once per retry
                    log.warning("warehouse %s is locked: %s; waiting up to %.0fs", self.path, holder, wait)
                    told = holder
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if told is not None:
            # The task's run time includes this wait: the log says how much of it was the queue for the file.
            log.info("warehouse %s opened after %.1fs waiting for the lock", self.path, time.monotonic() - asked)
        try:
            yield DuckDBSession(con)
        finally:
            con.close()


class WarehouseBusy(RuntimeError):
    """The warehouse file stayed locked by another process past the wait."""


BUSY_FIX = ("Only one process may open a DuckDB file, even to read: look at the results through a copy "
            "(cp warehouse.duckdb /tmp/look.duckdb), or stop the other process; the wait is "
            "$DAGSPEC_WAREHOUSE_LOCK_WAIT seconds (default 600)")
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def lock_wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("DAGSPEC_WAREHOUSE_LOCK_WAIT", LOCK_WAIT_SECONDS)))
    except ValueError:
        return float(LOCK_WAIT_SECONDS)


def lock_holder(message: str) -> str:
    """Who holds the file, from DuckDB's own error: another dagspec or Airflow task, or something else
    (a DuckDB shell, a notebook) that a user left open."""
    found = _HOLDER.search(message)
    if found is None:
        return "held by another process"
    pid = int(found["pid"])
    program = Path(found["program"]).name
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
    except OSError:
        args = []
    # The program's name, not any argument: a shell opening .../dagspec-data/warehouse.duckdb is no task.
    # Airflow's task processes retitle themselves ("airflow task supervisor: ...").
    names = {Path(a).name.split(":")[0] for a in args[:3]}
    if names & {"dagspec", "airflow", "celery"} or any(a in ("airflow", "dagspec.cli") for a in args[1:3]):
        return f"another task writes to it ({program}, PID {pid})"
    return f"held by {program} (PID {pid}), not a dagspec task: a DuckDB shell or notebook left open?"


class DuckDBSession(JoinsNested):
    dialect = "duckdb"
    loads_chunks = True  # replace_batches: a chunk's batches in one statement each

    def __init__(self, con: DuckDBPyConnection):
        self.con = con

    @contextmanager
    def outermost_transaction(self) -> Iterator[None]:
        """One transaction; the error that ended it is the one raised. A COMMIT that fails (disk full) has
        already ended the transaction, so the ROLLBACK after it fails too ("no transaction is active"):
        that second error is only logged, never put in place of "No space left on device".
        DuckDB has no savepoints: one inside another joins it (warehouse/nesting.py)."""
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

    def expose_batch(self, name: str, schema: str, table: str, batch_date: Key) -> str:
        """A view of one batch of a warehouse table, without the columns dagspec added."""
        added = BatchColumns.of(batch_date)
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote(name, self.dialect)} AS "
            f"SELECT * EXCLUDE ({', '.join(added.names)}) FROM {qualified(schema, table, self.dialect)} "
            f"WHERE {added.literal_where()}"  # typed literals made from the key, not user text
        )
        return quote(name, self.dialect)

    def expose_history(self, name: str, schema: str, table: str, first: date | None, last: date) -> str:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name, self.dialect)} AS SELECT * FROM "
                         f"{qualified(schema, table, self.dialect)} WHERE {history_filter(first, last)}")
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

    def replace_batch(self, schema: str, table: str, batch_date: Key, select_sql: str, params: dict[str, Any],
                      keep: int | None = None, after: Sequence[str] = ()) -> int:
        """Delete-then-insert one batch in one transaction; the SELECT must not produce the added columns."""
        target = qualified(schema, table, self.dialect)
        added = BatchColumns.of(batch_date)
        batch_sql = f"SELECT *, {added.select(dollar)} FROM ({select_sql}) AS _dagspec_src"
        bound = {**params, **added.params()}
        produced = self.columns(select_sql, params)
        added.refuse_clash(produced)
        key = {added.replace_by: added.params()[added.replace_by]}
        with self.transaction():
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, self.dialect)}")
            existing = self.table_columns(schema, table)
            wanted = produced + added.typed("DATE", "TIMESTAMP")
            if existing is None:
                self.con.execute(f"CREATE TABLE {target} AS {batch_sql} LIMIT 0", bound)
            elif columns_diff(existing, wanted):
                raise SchemaDrift(f"{schema}.{table}", columns_diff(existing, wanted))
            self.con.execute(f"DELETE FROM {target} WHERE {added.where(dollar)}", key)
            self.con.execute(f"INSERT INTO {target} BY NAME {batch_sql}", bound)
            if keep is not None:
                self.con.execute(prune_sql(target, keep, added.replace_by))
            for statement in after:
                self.con.execute(statement)
            rows = self.con.execute(
                f"SELECT count(*) FROM {target} WHERE {added.where(dollar)}", key).fetchone()[0]
        return rows

    def replace_batches(self, schema: str, table: str, parts: Sequence[tuple[Key, str]], params: dict[str, Any],
                        keep: int | None = None, after: Sequence[str] = ()) -> dict[Key, int]:
        """replace_batch for a chunk: one column check, one DELETE and one INSERT for all its batches."""
        target = qualified(schema, table, self.dialect)
        chunk = chunk_sql(target, parts, params, dollar)
        added = first_key(parts)
        produced = self.columns(chunk.source, params)
        added.refuse_clash(produced)
        with self.transaction():
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, self.dialect)}")
            existing = self.table_columns(schema, table)
            wanted = produced + added.typed("DATE", "TIMESTAMP")
            if existing is None:
                self.con.execute(f"CREATE TABLE {target} AS {chunk.rows} LIMIT 0", chunk.params)
            elif columns_diff(existing, wanted):
                raise SchemaDrift(f"{schema}.{table}", columns_diff(existing, wanted))
            counted = load_chunk(lambda sql, bound: self.con.execute(sql, bound).fetchall(), target, chunk,
                                 f"INSERT INTO {target} BY NAME {chunk.rows}", keep, after)
        return counts_by_key(parts, chunk.by, counted)

    def merge_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                    key: list[str]) -> int:
        return materialize.merge_batch(self, schema, table, batch_date, select_sql, params, key)

    def replace_table(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any]) -> int:
        return materialize.replace_table(self, schema, table, batch_date, select_sql, params)

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        materialize.create_view(self, schema, table, select_sql)

    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        return self.con.execute(select_sql, params).fetch_record_batch(batch_rows)

    def drop_schema(self, schema: str) -> None:
        self.con.execute(f"DROP SCHEMA IF EXISTS {quote(schema, self.dialect)} CASCADE")
