"""Publish a batch to BigQuery: its rows with batch_date added, loaded and merged as the BigQuery warehouse
writes (dagspec.warehouse.bigquery_load). The table's schema comes from the data (Parquet)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from dagspec.warehouse.bigquery_load import load_parquet, merge_staging

if TYPE_CHECKING:
    from collections.abc import Iterator

    from google.cloud import bigquery


def with_batch_date(schema: pa.Schema, batches: Iterable[pa.RecordBatch], batch_date: date
                    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if "batch_date" in schema.names:
        raise ValueError("the batch has a column named batch_date; dagspec adds it: rename or drop yours")
    out_schema = schema.append(pa.field("batch_date", pa.date32()))

    def gen() -> Iterator[pa.RecordBatch]:
        for b in batches:
            yield pa.RecordBatch.from_arrays([*b.columns, pa.array([batch_date] * b.num_rows, pa.date32())],
                                             schema=out_schema)

    return out_schema, gen()


def publish_batch(client: bigquery.Client, table_id: str, batch_date: date, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
                  unique_key: list[str] | None = None) -> int:
    """Load one batch into `project.dataset.table` (partitioned by batch_date); returns the partition's rows."""
    project, dataset, table = table_id.split(".")
    out_schema, rows_iter = with_batch_date(schema, batches, batch_date)
    client.create_dataset(f"{project}.{dataset}", exists_ok=True)
    staging = f"{project}.{dataset}._dagspec_stage_{table}_{uuid.uuid4().hex[:8]}"
    try:
        load_parquet(client, staging, out_schema, rows_iter)
        return merge_staging(client, staging, table_id, batch_date, unique_key)
    finally:
        client.delete_table(staging, not_found_ok=True)
