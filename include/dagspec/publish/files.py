"""Export a batch as files in the partition layout, Parquet, CSV or Excel: a partition like a staged one, so
readers go through its manifest and a re-run replaces exactly one (the store commits it; see store.py)."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from dagspec.partitions import Key
from dagspec.publish.csv_cells import escape_batches
from dagspec.store import PartitionInfo, Store

FORMATS = ("parquet", "csv", "xlsx")


def export_partition(store: Store, fmt: str, schema: str, table: str, batch_date: Key, arrow_schema: pa.Schema,
                     batches: Iterable[pa.RecordBatch], *, escape_formulas: bool = True) -> PartitionInfo:
    """`escape_formulas`: CSV text cells that spreadsheets would evaluate are made inert (see csv_cells)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    if fmt == "csv" and escape_formulas:
        batches = escape_batches(batches)
    return store.write_partition(schema, table, batch_date, arrow_schema, batches, fmt=fmt)
