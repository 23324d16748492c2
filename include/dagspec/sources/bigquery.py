"""Extract from BigQuery: a table's window or a query's result, streamed as Arrow record batches.

The result is read through the BigQuery Storage Read API when a read client is available (the
fast path, Arrow on the wire) and through the REST pages otherwise; either way it arrives as Arrow
record batches and never as a DataFrame. The window is bound as query parameters.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.gcp import bigquery_client, bigquery_read_client, project
from dagspec.sources.contract import Rows
from dagspec.spec.model import BigQuerySource
from dagspec.sql import to_dialect
from dagspec.windows import Batch

if TYPE_CHECKING:
    from google.cloud import bigquery

    from dagspec.spec.sources import BigQuerySource

_PARAM_TYPES = {"DATE": "DATE", "DATETIME": "DATETIME", "TIMESTAMP": "TIMESTAMP"}


def _bq_name(name: str) -> str:
    return f"`{name}`"  # names are plain identifiers (checked by the definition model)


def read_batches(info: ConnectionInfo, source: BigQuerySource, batch: Batch, chunk_rows: int) -> Rows:

    client = bigquery_client(info, source.project)
    try:
        return _read(client, info, source, batch, chunk_rows)
    except BaseException:
        client.close()
        raise


def _read(client: bigquery.Client, info: ConnectionInfo, source: BigQuerySource, batch: Batch, chunk_rows: int
          ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from google.cloud import bigquery

    window = batch.params()
    if source.query is not None:
        sql, names = to_dialect(source.query, read="bigquery", write="bigquery")
        unknown = [n for n in names if n not in window]
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(':' + n for n in unknown)}; "
                             "available: :from_date, :to_date, :batch_date")
        params = [_param(n, window[n], "DATE" if n == "batch_date" else "TIMESTAMP") for n in names]
    else:
        table_id = f"{project(info, source.project)}.{source.dataset}.{source.table}"
        sql, params = f"SELECT * FROM `{table_id}`", []
        if source.incremental_column:
            col_type = next((f.field_type for f in client.get_table(table_id).schema
                             if f.name == source.incremental_column), None)
            if col_type not in _PARAM_TYPES:
                raise ValueError(f"incremental_column {source.incremental_column!r} of {table_id} is "
                                 f"{col_type or 'missing'}; it must be a DATE, DATETIME or TIMESTAMP column")
            col = _bq_name(source.incremental_column)
            sql += f" WHERE {col} >= @from_date AND {col} < @to_date"
            params = [_param("from_date", window["from_date"], col_type),
                      _param("to_date", window["to_date"], col_type)]
    job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
    rows = job.result(page_size=chunk_rows)
    read_client = bigquery_read_client(info)

    def close_reader() -> None:
        if read_client is not None:  # None: no Storage Read API (rows come over REST)
            read_client.transport.close()

    def close() -> None:
        # Both clients hold connections (HTTP pool, gRPC channel): closed with the step, not at exit.
        close_reader()
        client.close()

    try:
        batches = iter(rows.to_arrow_iterable(bqstorage_client=read_client))
        first = next(batches, None)
        if first is None:
            empty = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params)).result()
            schema = empty.to_arrow(create_bqstorage_client=False).schema
            close()
            return schema, iter(())
    except BaseException:
        close_reader()
        raise

    def drain() -> Iterator[pa.RecordBatch]:
        try:
            yield from (b for b in itertools.chain([first], batches) if b.num_rows)
        finally:
            close()

    return first.schema, drain()


def _param(name: str, value: Any, bq_type: str) -> bigquery.ScalarQueryParameter:
    from google.cloud import bigquery

    if bq_type == "DATE":
        value = value.date() if hasattr(value, "date") else value
    elif bq_type == "DATETIME":
        value = value.replace(tzinfo=None)  # windows are UTC; a DATETIME column is taken as UTC wall time
    return bigquery.ScalarQueryParameter(name, bq_type, value)
