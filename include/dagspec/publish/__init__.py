"""Publish targets beyond the warehouse table: object-store files, BigQuery, Google Sheets, e-mail."""

from __future__ import annotations

import pyarrow as pa


def read_at_most(reader: pa.RecordBatchReader, limit: int) -> pa.Table:
    """The reader's rows, but stop once more than `limit` are read: a small target (a sheet, an e-mail) never
    holds a big batch in memory; the caller sees num_rows > limit and refuses."""
    batches, total = [], 0
    for batch in reader:
        batches.append(batch)
        total += batch.num_rows
        if total > limit:
            break
    return pa.Table.from_batches(batches, schema=reader.schema)
