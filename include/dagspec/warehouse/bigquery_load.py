"""Getting Arrow batches into BigQuery tables: a Parquet load job into a staging table, then one MERGE.

Both the BigQuery warehouse and the BigQuery publisher write this way. The MERGE either replaces exactly
the batch's partition (`ON FALSE ... WHEN NOT MATCHED BY SOURCE AND batch_date = @d THEN DELETE`), or
upserts on a key: one statement, so readers see the old partition or the new one. A table whose columns
differ from the staged ones is never altered silently: the run fails with what changed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from dagspec.warehouse.base import SchemaDrift, columns_diff

if TYPE_CHECKING:
    from google.cloud import bigquery


def _field_sig(fields: Iterable[bigquery.SchemaField]) -> list[tuple[str, str]]:
    return [(f.name, f"{f.field_type}{'[]' if f.mode == 'REPEATED' else ''}") for f in fields]


def load_parquet(client: bigquery.Client, table_id: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> None:
    """A load job from Parquet written to local disk batch by batch (never a DataFrame); replaces the table."""
    from google.cloud import bigquery

    with tempfile.NamedTemporaryFile(suffix=".parquet") as tmp:
        with pq.ParquetWriter(tmp.name, schema) as writer:
            for b in batches:
                writer.write_batch(b)
        with open(tmp.name, "rb") as fh:
            config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET,
                                            write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)
            # Parquet DECIMAL(p<=38, s<=9) maps to NUMERIC, wider ones to BIGNUMERIC, as BigQuery does.
            config.decimal_target_types = ["NUMERIC", "BIGNUMERIC"]
            client.load_table_from_file(fh, table_id, job_config=config).result()


def bq_name(name: str) -> str:
    if "`" in name or "\\" in name:
        raise ValueError(f"column name {name!r} cannot be used in BigQuery SQL")
    return f"`{name}`"


def merge_staging(client: bigquery.Client, staging: str, table_id: str, batch_date: date, unique_key: list[str] | None) -> int:
    """One MERGE from the staging table: replace the batch's partition, or upsert on the key."""
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    _, dataset, table = table_id.split(".")
    staged = client.get_table(staging)
    try:
        existing = client.get_table(table_id)
    except NotFound:
        target = bigquery.Table(table_id, schema=staged.schema)
        target.time_partitioning = bigquery.TimePartitioning(field="batch_date")
        client.create_table(target)
        existing = client.get_table(table_id)
    have, want = _field_sig(existing.schema), _field_sig(staged.schema)
    if have != want:
        raise SchemaDrift(f"{dataset}.{table} (BigQuery)", columns_diff(have, want) or ["column order differs"])
    params = [bigquery.ScalarQueryParameter("batch_date", "DATE", batch_date)]
    cols = [f.name for f in staged.schema]
    if unique_key:
        missing = [k for k in unique_key if k not in cols]
        if missing:
            raise ValueError(f"merge key column(s) {', '.join(missing)} are not in the batch")
        on = " AND ".join(f"T.{bq_name(k)} = S.{bq_name(k)}" for k in unique_key)
        sets = ", ".join(f"{bq_name(c)} = S.{bq_name(c)}" for c in cols if c not in unique_key)
        sql = (f"MERGE `{table_id}` T USING `{staging}` S ON {on} "
               + (f"WHEN MATCHED THEN UPDATE SET {sets} " if sets else "")
               + f"WHEN NOT MATCHED THEN INSERT ({', '.join(bq_name(c) for c in cols)}) "
               f"VALUES ({', '.join('S.' + bq_name(c) for c in cols)})")
    else:
        sql = (f"MERGE `{table_id}` T USING `{staging}` S ON FALSE "
               "WHEN NOT MATCHED BY SOURCE AND T.batch_date = @batch_date THEN DELETE "
               "WHEN NOT MATCHED THEN INSERT ROW")
    client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params)).result()
    count = client.query(f"SELECT count(*) AS n FROM `{table_id}` WHERE batch_date = @batch_date",
                         job_config=bigquery.QueryJobConfig(query_parameters=params)).result()
    return next(iter(count))[0]
