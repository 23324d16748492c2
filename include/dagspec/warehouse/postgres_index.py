"""The index a PostgreSQL published table gets on the columns dagspec adds.

Every batch's re-run deletes by batch_date (batch_start for a sub-daily batch) and every history read filters
by batch_date: without an index each of them scans the whole table, so a year of batches makes each load slower.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from dagspec.sql import qualified, quote

if TYPE_CHECKING:
    from collections.abc import Callable

    from dagspec.warehouse.batch_columns import BatchColumns

_UNSAFE = re.compile(r"[^a-z0-9_]")


def index_name(schema: str, table: str, column: str) -> str:
    """A name within PostgreSQL's 63 bytes, unique per (schema, table, column): a readable prefix cut from the
    table name (lowercased, only [a-z0-9_]) and a digest of the exact names, so two long names never collide."""
    digest = hashlib.sha256(f"{schema}\0{table}\0{column}".encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', table.lower())[:32]}_{column}_{digest}"


def index_batch_columns(execute: Callable[[str], object], schema: str, table: str, added: BatchColumns) -> None:
    """CREATE INDEX IF NOT EXISTS on each added column the batch is replaced or read by (``execute``: the
    session's, inside its transaction)."""
    for column in dict.fromkeys(["batch_date", added.replace_by]):
        execute(
            f"CREATE INDEX IF NOT EXISTS {quote(index_name(schema, table, column), 'postgres')} "
            f"ON {qualified(schema, table, 'postgres')} ({quote(column, 'postgres')})"
        )
