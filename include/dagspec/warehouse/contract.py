"""What the stages ask of a warehouse: a Warehouse opens Sessions; every Session offers every operation.

A warehouse that has no native form of an operation implements it with the generic one (materialize.py),
so callers never ask a session what it can do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.dataset as pads

# What a session can make queryable: staged partitions (a dataset), a table in memory, or a stream of batches.
ArrowSource = pads.Dataset | pa.Table | pa.RecordBatchReader


def record_batches(source: ArrowSource) -> Iterable[pa.RecordBatch]:
    """The source's batches in order, read lazily (a reader already is a stream of batches)."""
    if isinstance(source, pa.RecordBatchReader):
        return source
    return source.to_batches()


class Session(Protocol):
    dialect: str  # sqlglot's name for the warehouse's SQL
    # True: the session is also a ChunkLoading one (warehouse/chunk_load.py), loading a chunk's batches in one
    # statement; False: callers load a chunk batch by batch with replace_batch.
    loads_chunks: bool

    def expose(self, name: str, relation: ArrowSource) -> str:
        """Make Arrow data queryable as `name`; returns the relation text to put in SQL."""

    def expose_batch(self, name: str, schema: str, table: str, batch_date: date) -> str:
        """One batch of a warehouse table, without its batch_date column; returns the relation text."""

    def expose_history(self, name: str, schema: str, table: str, first: date | None, last: date) -> str:
        """The table's batches with batch_date in [first, last], batch_date column included; returns the relation
        text (a name, or on BigQuery and Redshift a parenthesised query: alias it in the SQL)."""

    def columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """The query's result columns with the warehouse's type names (no rows are read)."""

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        """The table's columns, None when it does not exist."""

    def replace_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                      keep: int | None = None, after: Sequence[str] = ()) -> int:
        """Replace one batch of the table with the query's rows, atomically; returns the batch's rows.
        keep=N: in the same transaction, delete every batch whose batch_date is not among the N greatest.
        after: statements (post-load SQL) run once the rows are in, in that transaction where the warehouse
        has one around the load."""

    def merge_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                    key: list[str]) -> int:
        """Upsert the query's rows on `key` as batch `batch_date`, atomically; returns the batch's rows."""

    def replace_table(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any]) -> int:
        """Replace the whole table with the query's rows, atomically; returns its rows."""

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        """Create or replace a view (replacing a table of that name)."""

    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Stream the query's result as Arrow batches."""

    def drop_schema(self, schema: str) -> None:
        """Drop a schema dagspec made for its own use (a transform test case's) with all it holds; nothing when it
        is not there. Never called on a schema a definition names."""


class Warehouse(Protocol):
    dialect: str

    def session(self) -> AbstractContextManager[Session]:
        """A session, closed (its scratch objects dropped) when the block ends."""
