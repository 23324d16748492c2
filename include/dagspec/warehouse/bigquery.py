"""BigQuery as the warehouse: transforms run as BigQuery SQL, batches are swapped with one MERGE.

A schema in dagspec is a BigQuery dataset. Staged Parquet reaches BigQuery through a load job into
a scratch table (dataset `_dagspec_scratch`, dropped when the session ends); results come back as
Arrow record batches. BigQuery has no multi-statement transactions outside scripts, so every write
is a single statement: MERGE (replace a batch or upsert on a key), CREATE OR REPLACE TABLE (table),
CREATE OR REPLACE VIEW (view). Each is atomic, so a failing query leaves the previous table intact.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.sql import quote
from dagspec.warehouse.base import history_filter
from dagspec.warehouse.batch_columns import daily_only
from dagspec.warehouse.bigquery_load import load_parquet, merge_staging
from dagspec.warehouse.contract import ArrowSource, record_batches

if TYPE_CHECKING:
    from google.cloud import bigquery
    from google.cloud.bigquery.table import RowIterator
    from google.cloud.bigquery_storage import BigQueryReadClient

DIALECT = "bigquery"
SCRATCH = "_dagspec_scratch"


class BigQueryWarehouse:
    dialect = DIALECT

    def __init__(self, info: ConnectionInfo):
        self.info = info

    @contextmanager
    def session(self) -> Iterator[BigQuerySession]:
        from dagspec.gcp import bigquery_client, bigquery_read_client, project

        session = BigQuerySession(bigquery_client(self.info), project(self.info), bigquery_read_client(self.info))
        try:
            yield session
        finally:
            session.close()


def _param(name: str, value: Any) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    from google.cloud import bigquery

    if isinstance(value, dt.datetime):
        kind = "TIMESTAMP" if value.tzinfo else "DATETIME"
    elif isinstance(value, dt.date):
        kind = "DATE"
    elif isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif isinstance(value, Decimal):
        kind = "NUMERIC"
    else:
        kind, value = "STRING", None if value is None else str(value)
    return bigquery.ScalarQueryParameter(name, kind, value)


class BigQuerySession:
    dialect = DIALECT
    loads_chunks = False  # each batch is its own MERGE job

    def __init__(self, client: bigquery.Client, project: str, read_client: BigQueryReadClient | None = None):
        self.client = client
        self.project = project
        self.read_client = read_client
        self._scratch: list[str] = []

    def close(self) -> None:
        for table_id in self._scratch:
            self.client.delete_table(table_id, not_found_ok=True)

    def _id(self, schema: str, table: str) -> str:
        quote(schema, DIALECT), quote(table, DIALECT)  # validates both as plain identifiers
        return f"{self.project}.{schema}.{table}"

    def relation(self, schema: str, table: str) -> str:
        return f"`{self._id(schema, table)}`"

    def query(self, sql: str, params: dict[str, Any] | None = None) -> RowIterator:
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=[_param(k, v) for k, v in (params or {}).items()])
        return self.client.query(sql, job_config=config).result()

    # -- inputs -------------------------------------------------------------------------------
    def expose(self, name: str, relation: ArrowSource) -> str:
        """Load an Arrow dataset/table/reader into a scratch table with a Parquet load job."""
        self.client.create_dataset(f"{self.project}.{SCRATCH}", exists_ok=True)
        quote(name, DIALECT)
        table_id = f"{self.project}.{SCRATCH}.{name.strip('_')}_{uuid.uuid4().hex[:10]}"
        batches = record_batches(relation)
        self._scratch.append(table_id)
        load_parquet(self.client, table_id, relation.schema, batches)
        return f"`{table_id}`"

    def expose_batch(self, name: str, schema: str, table: str, batch_date: dt.date) -> str:
        batch_date = daily_only(batch_date, "BigQuery")
        return (f"(SELECT * EXCEPT (batch_date) FROM {self.relation(schema, table)} "
                f"WHERE batch_date = DATE '{batch_date.isoformat()}')")

    def expose_history(self, name: str, schema: str, table: str, first: dt.date | None, last: dt.date) -> str:
        return f"(SELECT * FROM {self.relation(schema, table)} WHERE {history_filter(first, last)})"

    # -- schema -------------------------------------------------------------------------------
    def columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        rows = self.query(f"SELECT * FROM ({select_sql}) LIMIT 0", params)
        return [(f.name, f.field_type) for f in rows.schema]

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        from google.api_core.exceptions import NotFound

        try:
            return [(f.name, f.field_type) for f in self.client.get_table(self._id(schema, table)).schema]
        except NotFound:
            return None

    # -- writes -------------------------------------------------------------------------------
    def _stage(self, schema: str, select_sql: str, params: dict[str, Any], batch_date: dt.date) -> str:
        batch_date = daily_only(batch_date, "BigQuery")
        if any(n == "batch_date" for n, _ in self.columns(select_sql, params)):
            raise ValueError("the query returns a column named batch_date; dagspec adds it: rename or drop yours")
        self.client.create_dataset(f"{self.project}.{schema}", exists_ok=True)
        staging = f"{self.project}.{schema}._dagspec_stage_{uuid.uuid4().hex[:10]}"
        self._scratch.append(staging)
        self.query(f"CREATE TABLE `{staging}` AS SELECT *, @_dagspec_batch_date AS batch_date FROM ({select_sql})",
                   {**params, "_dagspec_batch_date": batch_date})
        return staging

    def replace_batch(self, schema: str, table: str, batch_date: dt.date, select_sql: str,
                      params: dict[str, Any], keep: int | None = None, after: Sequence[str] = ()) -> int:
        batch_date = daily_only(batch_date, "BigQuery")
        if keep is not None:
            # The staging merge is its own job; a prune after it could not share its atomicity.
            raise ValueError("snapshot mode ('keep') is not available on a BigQuery warehouse yet")
        count = self.merge_batch(schema, table, batch_date, select_sql, params, None)
        for statement in after:  # no transaction spans a load job here: each runs once the rows are in
            self.query(statement)
        return count

    def merge_batch(self, schema: str, table: str, batch_date: dt.date, select_sql: str, params: dict[str, Any],
                    key: list[str] | None) -> int:
        batch_date = daily_only(batch_date, "BigQuery")
        staging = self._stage(schema, select_sql, params, batch_date)
        return merge_staging(self.client, staging, self._id(schema, table), batch_date, key)

    def replace_table(self, schema: str, table: str, batch_date: dt.date, select_sql: str,
                      params: dict[str, Any]) -> int:
        batch_date = daily_only(batch_date, "BigQuery")
        if any(n == "batch_date" for n, _ in self.columns(select_sql, params)):
            raise ValueError("the query returns a column named batch_date; dagspec adds it: rename or drop yours")
        self.client.create_dataset(f"{self.project}.{schema}", exists_ok=True)
        target = self.relation(schema, table)
        self.query(f"CREATE OR REPLACE TABLE {target} AS SELECT *, @_dagspec_batch_date AS batch_date "
                   f"FROM ({select_sql})", {**params, "_dagspec_batch_date": batch_date})
        return next(iter(self.query(f"SELECT count(*) FROM {target}")))[0]

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        self.client.create_dataset(f"{self.project}.{schema}", exists_ok=True)
        self.query(f"CREATE OR REPLACE VIEW {self.relation(schema, table)} AS {select_sql}")

    def drop_schema(self, schema: str) -> None:
        quote(schema, DIALECT)
        self.client.delete_dataset(f"{self.project}.{schema}", delete_contents=True, not_found_ok=True)

    # -- results ------------------------------------------------------------------------------
    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        rows = self.client.query(select_sql, job_config=self._config(params)).result(page_size=batch_rows)
        first_schema = None
        batches = iter(rows.to_arrow_iterable(bqstorage_client=self.read_client))
        first = next(batches, None)
        if first is None:
            first_schema = self.client.query(select_sql, job_config=self._config(params)).result().to_arrow(
                create_bqstorage_client=False).schema
            return pa.RecordBatchReader.from_batches(first_schema, iter(()))

        def gen() -> Iterator[pa.RecordBatch]:
            yield first
            for b in batches:
                if b.num_rows:
                    yield b.cast(first.schema) if b.schema != first.schema else b

        return pa.RecordBatchReader.from_batches(first.schema, gen())

    def _config(self, params: dict[str, Any]) -> bigquery.QueryJobConfig:
        from google.cloud import bigquery

        return bigquery.QueryJobConfig(query_parameters=[_param(k, v) for k, v in (params or {}).items()])


__all__ = ["BigQueryWarehouse", "BigQuerySession"]
