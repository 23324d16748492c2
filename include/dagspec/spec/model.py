"""The definition model, v1: what a JSON drop may say, with the rules that make it runnable.

Every field has a description because the JSON Schema published from this model is what editors
show while people type a definition.
"""

from __future__ import annotations

import re
from functools import lru_cache
from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from dagspec.spec.schedule import check_schedule
from dagspec.store_names import RESERVED

# A thousand definitions share a handful of schedules; checking one with croniter costs 0.2 ms.
_checked_schedule = lru_cache(maxsize=256)(check_schedule)

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
# The URIs dagspec gives its outputs (dagspec.airflow.assets) or any other scheme://... Airflow accepts.
ASSET_URI = r"^[a-z][a-z0-9+.-]*://[^\s]+$"
Identifier = Annotated[
    str,
    Field(
        pattern=IDENTIFIER,
        description="A plain SQL identifier: letters, digits and underscores, not starting with a digit, "
        "at most 63 characters.",
    ),
]
StepId = Annotated[
    str,
    Field(pattern=IDENTIFIER, description="A step id: letters, digits and underscores (it becomes the task id)."),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnRef(Strict):
    conn_id: str = Field(
        description="Id of an Airflow Connection. Secrets stay in the connection, never in the definition.",
        pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        examples=["dagspec_warehouse", "analytics_pg"],
    )


class TableRef(Strict):
    schema_: Identifier = Field(alias="schema", description="Schema (dataset) name.", examples=["raw", "analytics"])
    table: Identifier = Field(description="Table name.", examples=["orders", "daily_revenue"])

    @field_validator("schema_")
    @classmethod
    def _not_the_stores_own(cls, value: str) -> str:
        if value.lower() in RESERVED:
            raise ValueError(f"schema {value!r} is a folder the store keeps for itself ({', '.join(sorted(RESERVED))})")
        return value

    @property
    def qualified(self) -> str:
        return f"{self.schema_}.{self.table}"


class SqlSource(ConnRef):
    """Rows from a SQL database reachable through SQLAlchemy."""

    kind: Literal["sql"] = Field(default="sql", description="Source kind (default: sql).", examples=["sql"])
    conn_id: str = Field(
        default="dagspec_source",
        description="Airflow Connection of the source database (postgres, mysql, sqlite, duckdb, or any SQLAlchemy URL).",
        pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        examples=["dagspec_source", "shop_db"],
    )
    schema_: Identifier | None = Field(default=None, alias="schema", description="Source schema, if not the default.",
                                      examples=["public", "sales"])
    table: Identifier | None = Field(default=None, description="Table to read. Give either table or query.",
                                     examples=["orders"])
    columns: list[Identifier] | None = Field(default=None, description="Columns to read (default: all).",
                                             examples=[["order_id", "customer_id", "amount", "ordered_at"]])
    query: str | None = Field(
        default=None,
        description="A SELECT to run instead of a table. Use :from_date and :to_date for the run's window; "
        "they are bound as parameters, never pasted into the SQL.",
        examples=["SELECT * FROM orders WHERE updated_at >= :from_date AND updated_at < :to_date"],
    )
    incremental_column: Identifier | None = Field(
        default=None,
        description="Table mode: read only rows whose column falls in [from_date, to_date). "
        "Leave empty for a full snapshot on every run.",
        examples=["ordered_at", "updated_at"],
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.query is not None and (self.columns or self.incremental_column):
            raise ValueError("'columns' and 'incremental_column' go with 'table'; a query selects its own rows")
        return self


_COLUMN_TYPE = (
    r"^(bool|boolean|int8|int16|int32|int64|float32|float64|double|string|binary|date|timestamp|timestamptz"
    r"|decimal\(\d{1,2}, ?\d{1,2}\))$"
)


class ObjectSource(ConnRef):
    """Objects (files) in S3 or GCS for the run's window: CSV, JSON lines or Parquet, streamed in batches."""

    kind: Literal["objects"] = Field(description="Source kind: objects in an S3 or GCS bucket.", examples=["objects"])
    conn_id: str = Field(
        description="Airflow Connection of the bucket: 'aws' for s3:// (login/password = access key/secret, "
        "extra endpoint_url, region_name), 'google_cloud_platform' for gs://.",
        pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        examples=["aws_landing", "gcs_exports"],
    )
    path: str = Field(
        description="s3://bucket/... or gs://bucket/..., a Jinja template rendered once for every day of the batch: "
        "{{ ds }} (YYYY-MM-DD), {{ ds_nodash }}, {{ day }} (a date, e.g. {{ day.strftime('%Y/%m/%d') }}), "
        "{{ batch_date }}, {{ from_date }}, {{ to_date }}. '*' and '?' match within one path segment, '**' across "
        "segments; without wildcards the path is one object or a prefix (names starting with '_' or '.' skipped).",
        examples=["s3://landing/events/{{ ds }}/*.csv", "gs://exports/orders/{{ day.strftime('%Y/%m/%d') }}/"],
        pattern=r"^(s3|gs)://[^/{}*?\[]+(/.*)?$",
    )
    format: Literal["csv", "jsonl", "parquet"] = Field(description="File format of the objects.",
                                                       examples=["csv", "parquet"])
    column_types: dict[str, Annotated[str, Field(pattern=_COLUMN_TYPE)]] | None = Field(
        default=None,
        description="CSV/JSON: types for columns instead of inferring them from the first block: bool, int64, "
        "float64, string, date, timestamp, timestamptz, decimal(P,S), ... (Parquet carries its own types).",
        examples=[{"order_id": "int64", "amount": "decimal(12,2)", "ordered_at": "timestamptz"}],
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV field delimiter (one character).",
                           examples=[";", "|"])

    @field_validator("path")
    @classmethod
    def _template(cls, value: str) -> str:
        import jinja2
        from jinja2 import meta

        try:
            names = meta.find_undeclared_variables(jinja2.Environment().parse(value))
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"the path is not a valid Jinja template: {exc.message}") from None
        unknown = sorted(names - {"ds", "ds_nodash", "day", "batch_date", "from_date", "to_date"})
        if unknown:
            raise ValueError(f"unknown template variable(s) {', '.join(unknown)}; use ds, ds_nodash, day, "
                             "batch_date, from_date or to_date")
        return value


class BigQuerySource(ConnRef):
    """Rows from BigQuery: a table's window or a query's result, read as Arrow (Storage Read API when available)."""

    kind: Literal["bigquery"] = Field(description="Source kind: BigQuery.", examples=["bigquery"])
    conn_id: str = Field(default="bigquery_default", pattern=r"^[A-Za-z0-9_.-]{1,250}$",
                         description="BigQuery connection (google_cloud_platform; project in extra.project).",
                         examples=["bigquery_default", "gcp_analytics"])
    project: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$",
                                description="Project of the table (default: the connection's).",
                                examples=["acme-analytics"])
    dataset: Identifier | None = Field(default=None, description="Dataset of the table (with 'table').",
                                       examples=["shop"])
    table: Identifier | None = Field(default=None, description="Table to read. Give either table or query.",
                                     examples=["orders"])
    incremental_column: Identifier | None = Field(
        default=None, description="Table mode: read rows whose column (DATE, DATETIME or TIMESTAMP) falls in "
        "[from_date, to_date). Leave empty for a full snapshot.", examples=["ordered_at"])
    query: str | None = Field(
        default=None,
        description="GoogleSQL to run instead of a table; :from_date and :to_date (TIMESTAMP) and :batch_date (DATE) "
        "are bound query parameters.",
        examples=["SELECT * FROM shop.orders WHERE ordered_at >= :from_date AND ordered_at < :to_date"],
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> BigQuerySource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' (with 'dataset') or 'query'")
        if self.table is not None and self.dataset is None:
            raise ValueError("'table' needs 'dataset'")
        if self.query is not None and self.incremental_column:
            raise ValueError("'incremental_column' goes with 'table'; a query selects its own rows")
        return self


def _source_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "sql")
    return getattr(value, "kind", "sql")


# New source kinds join this union; a source without "kind" is a SQL source.
Source = Annotated[
    Union[Annotated[SqlSource, Tag("sql")], Annotated[ObjectSource, Tag("objects")],
          Annotated[BigQuerySource, Tag("bigquery")]], Discriminator(_source_kind)
]


class StepBase(Strict):
    id: StepId = Field(description="Step id, unique in the pipeline: letters, digits and underscores (it becomes "
                       "the task id; other steps name it in input, inputs and after).", examples=["extract_orders"])
    description: str = Field(default="", description="What this step does, shown in the task's docs.",
                             examples=["Orders placed during the run's window."])
    after: list[StepId] | None = Field(
        default=None,
        description="Steps this one waits for. Default: the step listed just before it. [] starts at the beginning.",
        examples=[["check_orders"], []],
    )

    def refs(self) -> list[str]:
        """Steps whose output this step reads (they must exist and come earlier in the graph)."""
        return []


class ExtractStep(StepBase):
    """Copy rows for the run's window from a source into staged Parquet partitions."""

    kind: Literal["extract"] = Field(description="Step kind: copy the window's rows into staged partitions.",
                                     examples=["extract"])
    source: Source = Field(
        description="Where the rows come from. Without \"kind\" it is a SQL source (a table or a query).",
        examples=[{"conn_id": "dagspec_source", "table": "orders", "incremental_column": "ordered_at"}],
    )
    target: TableRef = Field(description="Where the batch is staged: <store>/<schema>/<table>/batch_date=YYYY-MM-DD/.",
                             examples=[{"schema": "raw", "table": "orders"}])
    chunk_rows: int = Field(default=50_000, ge=100, le=10_000_000, strict=True,
                            description="Rows fetched per round trip; bounds memory.",
                            examples=[50_000, 200_000])


class Expectation(Strict):
    """One Great Expectations expectation, in GX's own JSON form plus a severity."""

    type: str = Field(
        description="A Great Expectations expectation type.", examples=["expect_column_values_to_not_be_null"]
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="The expectation's arguments.",
                                   examples=[{"column": "order_id"}], json_schema_extra={"default": {}})
    meta: dict[str, Any] = Field(default_factory=dict, description="Free-form notes kept with the result.",
                                 examples=[{"owner": "analytics"}], json_schema_extra={"default": {}})
    severity: Literal["fail", "warn"] = Field(
        default="fail", description="fail: stop the run before anything is published. warn: record and continue.",
        examples=["fail", "warn"],
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from dagspec.spec.expectation_types import check_expectation_type

        return check_expectation_type(value)

    @model_validator(mode="after")
    def _arguments(self) -> Expectation:
        from dagspec.spec.expectation_args import raise_problems

        raise_problems(self.type, self.kwargs)
        return self


class ValidateStep(StepBase):
    """Run Great Expectations on a step's batch; a failed 'fail' expectation stops the run."""

    kind: Literal["validate"] = Field(description="Step kind: check a batch with Great Expectations.",
                                      examples=["validate"])
    input: StepId = Field(description="The extract or transform step whose batch is checked.",
                          examples=["extract_orders"])
    expectations: list[Expectation] = Field(
        default_factory=list, description="Expectations written inline.", json_schema_extra={"default": []},
        examples=[[{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]],
    )
    suite: str | None = Field(
        default=None,
        description="A Great Expectations suite file (GX's own JSON) under include/expectations/. Severity per "
        "expectation: its meta.severity ('fail'/'warn') or GX's severity ('critical' = fail, else warn).",
        examples=["orders.json"],
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.json$",
    )
    run_on: Literal["batch", "warehouse"] = Field(
        default="batch",
        description="batch: check the staged batch with SQL in embedded DuckDB, streaming (cheap default). "
        "warehouse: check a transform's batch where it lives (DuckDB in place, PostgreSQL through GX's SQL engine, "
        "BigQuery with the same aggregate queries run in BigQuery).",
        examples=["warehouse"],
    )
    quarantine: TableRef | None = Field(
        default=None, description="Warehouse table that receives the batch's failing rows (with the failed checks).",
        examples=[{"schema": "quarantine", "table": "orders"}],
    )

    @model_validator(mode="after")
    def _some_expectations(self) -> ValidateStep:
        if not self.expectations and self.suite is None:
            raise ValueError("give 'expectations', a 'suite' file, or both")
        if self.suite is not None and ".." in self.suite.split("/"):
            raise ValueError("the suite file must be inside include/expectations/ (no '..')")
        return self

    def refs(self) -> list[str]:
        return [self.input]


class TransformStep(StepBase):
    """Run a SQL file inside the warehouse, once per batch; its rows replace that batch in `target`."""

    kind: Literal["transform"] = Field(description="Step kind: run a SQL file in the warehouse once per batch.",
                                       examples=["transform"])
    sql: str | None = Field(
        default=None,
        description="Path of a SQL file under include/sql/. In it, {{ ref('step_id') }} names a step's batch, "
        ":from_date and :to_date are the window (bound parameters). Give either sql or query.",
        examples=["orders/daily_revenue.sql"],
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.sql$",
    )
    query: str | None = Field(
        default=None, min_length=1, max_length=100_000,
        description="The SQL itself, inline, for a drop that carries its own SQL: the same Jinja, ref() and "
        ":from_date/:to_date as a SQL file. Give either sql or query.",
        examples=["SELECT channel, count(*) AS orders FROM {{ ref('extract_orders') }} GROUP BY channel"],
    )
    dialect: Literal["duckdb", "postgres", "redshift", "bigquery", "mysql", "sqlite", "snowflake"] | None = Field(
        default=None,
        description="Dialect the SQL file is written in (default: the warehouse's). Other dialects are "
        "transpiled with sqlglot, and the task log says so.",
        examples=["postgres", "bigquery"],
    )
    inputs: list[StepId] = Field(default_factory=list, description="Steps referenced with ref() in the SQL.",
                                 examples=[["extract_orders"]], json_schema_extra={"default": []})
    target: TableRef | None = Field(
        default=None, description="Warehouse table the result is kept in (default: dagspec_work.<dag_id>__<step id>).",
        examples=[{"schema": "analytics", "table": "daily_revenue"}],
    )
    materialization: Literal["incremental", "table", "view"] = Field(
        default="incremental",
        description="incremental: each batch's rows replace that batch (or are merged on unique_key). "
        "table: the result replaces the whole table atomically (a failure leaves the old one). "
        "view: a view over warehouse tables (its ref()s are whole tables; no :parameters).",
        examples=["table", "view"],
    )
    unique_key: list[Identifier] | None = Field(
        default=None, min_length=1,
        description="incremental only: MERGE on these columns instead of replacing the batch.",
        examples=[["order_id"]],
    )

    @model_validator(mode="after")
    def _key_needs_incremental(self) -> TransformStep:
        if (self.sql is None) == (self.query is None):
            raise ValueError("give exactly one of 'sql' (a SQL file) or 'query' (the SQL inline)")
        if self.unique_key is not None and self.materialization != "incremental":
            raise ValueError("'unique_key' goes with materialization 'incremental' (it merges batches on the key)")
        return self

    @property
    def sql_label(self) -> str:
        """How messages name the step's SQL: its file, or the step's inline query."""
        return self.sql or f"the inline query of {self.id}"

    @field_validator("sql")
    @classmethod
    def _inside_sql_dir(cls, value: str | None) -> str | None:
        if value is not None and ".." in value.split("/"):
            raise ValueError("the SQL file must be inside include/sql/ (no '..')")
        return value

    def refs(self) -> list[str]:
        return list(self.inputs)


class Export(Strict):
    format: Literal["parquet", "csv"] = Field(default="parquet", description="File format of the exported partition.",
                                              examples=["parquet"])
    target: TableRef | None = Field(default=None, description="Store location (default: the warehouse table's).",
                                    examples=[{"schema": "exports", "table": "daily_revenue"}])
    conn_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Store connection to export to (an 'fs', 'aws' or 'google_cloud_platform' connection; "
        "default: the pipeline's store).",
        examples=["lake_s3"],
    )


class BigQueryTarget(Strict):
    """A BigQuery table partitioned by batch_date, loaded from Parquet with a load job."""

    conn_id: str = Field(default="bigquery_default", pattern=r"^[A-Za-z0-9_.-]{1,250}$",
                         description="BigQuery connection (google_cloud_platform; project in extra.project).",
                         examples=["bigquery_default", "gcp_analytics"])
    project: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$",
                                description="Project of the table (default: the connection's).",
                                examples=["acme-analytics"])
    dataset: Identifier = Field(description="Dataset of the table.", examples=["analytics"])
    table: Identifier = Field(description="Table name.", examples=["daily_revenue"])
    unique_key: list[Identifier] | None = Field(
        default=None, min_length=1,
        description="MERGE on these columns instead of replacing the batch's partition.",
        examples=[["order_id"]],
    )


class SheetTarget(Strict):
    """A Google Sheets worksheet refreshed with the batch: cleared, then header and rows written."""

    conn_id: str = Field(default="google_sheets_default", pattern=r"^[A-Za-z0-9_.-]{1,250}$",
                         description="Connection holding the service account (google_cloud_platform).",
                         examples=["google_sheets_default"])
    spreadsheet_id: str = Field(
        pattern=r"^[A-Za-z0-9_-]{10,100}$",
        description="The id in the sheet's URL: docs.google.com/spreadsheets/d/<id>/edit.",
        examples=["1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"],
    )
    worksheet: str = Field(default="Sheet1", min_length=1, max_length=100, description="Worksheet (tab) title.",
                           examples=["Daily revenue"])
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000, strict=True,
                          description="Refuse batches larger than this many rows (Sheets holds 10 million cells).",
                          examples=[10_000])


class PublishStep(StepBase):
    """Replace the batch's partition in a warehouse table (one transaction) and/or export it to the store."""

    kind: Literal["publish"] = Field(description="Step kind: load a batch into a table and/or export it.",
                                     examples=["publish"])
    input: StepId = Field(description="The extract or transform step whose batch is published.",
                          examples=["daily_revenue"])
    table: TableRef | None = Field(default=None, description="Warehouse table to load.",
                                   examples=[{"schema": "analytics", "table": "daily_revenue"}])
    export: Export | None = Field(default=None, description="Also write the batch to the object store.",
                                  examples=[{"format": "parquet"}])
    bigquery: BigQueryTarget | None = Field(default=None, description="Also load the batch into BigQuery.",
                                            examples=[{"dataset": "analytics", "table": "daily_revenue"}])
    sheet: SheetTarget | None = Field(
        default=None, description="Also refresh a Google Sheets worksheet.",
        examples=[{"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms", "worksheet": "Daily revenue"}],
    )

    @model_validator(mode="after")
    def _somewhere(self) -> PublishStep:
        if self.table is None and self.export is None and self.bigquery is None and self.sheet is None:
            raise ValueError("a publish step needs at least one of 'table', 'export', 'bigquery', 'sheet'")
        if self.export is not None and self.export.target is None and self.table is None:
            raise ValueError("'export' needs a 'target' when there is no 'table'")
        return self

    def refs(self) -> list[str]:
        return [self.input]


# Model steps build on the classes above, so they are imported here, not at the top.
from dagspec.spec.ml_steps import DriftStep, EvaluateStep, PromoteStep, ScoreStep, TrainStep  # noqa: E402

Step = Annotated[Union[ExtractStep, ValidateStep, TransformStep, PublishStep, TrainStep, EvaluateStep, PromoteStep,
                       ScoreStep, DriftStep], Field(discriminator="kind")]

class Alerts(Strict):
    """Who hears about a failed or retried task. Addresses and conn ids only: secrets stay in connections."""

    email: list[Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+$")]] = Field(
        default_factory=list, description="Addresses that get an email (through the SMTP connection smtp_conn_id).",
        examples=[["data-team@example.com"]], json_schema_extra={"default": []},
    )
    smtp_conn_id: str = Field(
        default="smtp_default", pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Airflow Connection of the SMTP server (host, port, login, password; extra from_email, ssl).",
        examples=["smtp_default"],
    )
    webhook_conn_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Airflow Connection holding a Slack-compatible incoming webhook URL (host or password).",
        examples=["slack_alerts"],
    )
    on: list[Literal["failure", "retry"]] = Field(
        default_factory=lambda: ["failure", "retry"], description="Which task events send an alert.",
        examples=[["failure"]], json_schema_extra={"default": ["failure", "retry"]},
    )


class Freshness(Strict):
    """How old the newest staged partition of the pipeline's tables may be before they count as stale."""

    max_age_hours: float = Field(
        gt=0, le=87_600, description="Hours since the end of the newest partition's data after which a table is "
        "stale (at most ten years).",
        examples=[36],
    )


DAG_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"


class Pipeline(Strict):
    """A pipeline definition: one JSON file, one Airflow DAG."""

    schema_uri: str | None = Field(default=None, alias="$schema", description="JSON Schema for editors.",
                                   examples=["../../include/schema/dagspec.schema.json"])
    version: Literal[1] = Field(default=1, description="Definition format version (older versions are migrated "
                                "when read; see dagspec.spec.migrate).", examples=[1])
    dag_id: str = Field(pattern=DAG_ID, description="Unique DAG id: letters, digits, '_', '.', '-'.",
                        examples=["orders_daily"])
    description: str = Field(default="", description="What the pipeline does; the first line is the DAG's "
                             "description, all of it is in the DAG's docs.", examples=["Yesterday's orders, checked."])
    owner: str = Field(default="dagspec", min_length=1, description="Owner shown in the Airflow UI.",
                       examples=["analytics"])
    tags: list[str] = Field(default_factory=list, description="Airflow tags (\"dagspec\" is always added).",
                            examples=[["orders", "finance"]], json_schema_extra={"default": []})
    schedule: str | None = Field(
        default="@daily",
        description="Cron expression or preset (@daily, @weekly, @monthly, @yearly), at most daily; null: manual only.",
        examples=["@daily", "0 3 * * *"],
    )
    schedule_assets: list[Annotated[str, Field(pattern=ASSET_URI)]] = Field(
        default_factory=list,
        description="Run when every one of these Airflow Assets has been updated (the outputs of other "
        "definitions: dagspec-warehouse://<conn_id>/<schema>/<table>, dagspec-store://..., bigquery://..., "
        "gsheets://...). The run processes the window of the newest triggering event. With 'schedule' also set, "
        "the pipeline runs on either; set \"schedule\": null to run on the assets alone.",
        examples=[["dagspec-warehouse://dagspec_warehouse/analytics/daily_revenue"]],
        json_schema_extra={"default": []},
    )
    start_date: date = Field(description="First date to process, YYYY-MM-DD.", examples=["2025-01-01"])
    end_date: date | None = Field(default=None, description="Last date to process (optional), YYYY-MM-DD.",
                                  examples=["2025-12-31"])
    catchup: bool = Field(default=False, description="Run every missed interval since start_date.", examples=[True])
    retries: int = Field(default=1, ge=0, le=20, strict=True, description="Retries of a failed task.", examples=[2])
    retry_delay_minutes: float = Field(default=5, ge=0, le=1440, description="Minutes between retries (at most a day).",
                                       examples=[10])
    max_active_runs: int = Field(default=1, ge=1, le=64, strict=True, description="Runs of this DAG at the same time "
                                 "(backfills included).", examples=[4])
    batch_days: int = Field(default=1, ge=1, le=366, strict=True,
                            description="Days per staged partition when a window spans several (at most a year).",
                            examples=[7])
    warehouse: ConnRef = Field(
        default_factory=lambda: ConnRef(conn_id="dagspec_warehouse"),
        description="Where transforms run and tables are published (default: the embedded DuckDB).",
        examples=[{"conn_id": "analytics_pg"}], json_schema_extra={"default": {"conn_id": "dagspec_warehouse"}},
    )
    store: ConnRef = Field(
        default_factory=lambda: ConnRef(conn_id="dagspec_store"),
        description="Object store for staged and exported partitions (default: a local folder).",
        examples=[{"conn_id": "lake_s3"}], json_schema_extra={"default": {"conn_id": "dagspec_store"}},
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Values for SQL Jinja ({{ params.name }}).",
        examples=[{"min_amount": 10, "region": "eu"}], json_schema_extra={"default": {}},
    )
    alerts: Alerts | None = Field(default=None, description="Email and webhook alerts on task failure and retry.",
                                  examples=[{"email": ["data-team@example.com"], "webhook_conn_id": "slack_alerts"}])
    freshness: Freshness | None = Field(default=None, description="Maximum age of the newest staged partition.",
                                        examples=[{"max_age_hours": 36}])
    steps: list[Step] = Field(
        min_length=1, description="The steps, each of a known kind; they run in this order unless 'after' says "
        "otherwise.",
        examples=[[{"id": "extract_orders", "kind": "extract", "source": {"table": "orders"},
                    "target": {"schema": "raw", "table": "orders"}}]],
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else _checked_schedule(value)

    @model_validator(mode="after")
    def _dates(self) -> Pipeline:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self

    def step(self, step_id: str) -> StepBase:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


KIND_OUTPUTS = {"extract", "transform"}  # kinds whose batch another step can read

_REFERENCE_RULES = {
    "validate": KIND_OUTPUTS,
    "publish": KIND_OUTPUTS | {"score"},  # predictions go out through the same targets as any table
    "transform": KIND_OUTPUTS,
    "train": KIND_OUTPUTS, "score": KIND_OUTPUTS, "drift": KIND_OUTPUTS,
    "evaluate": {"train"}, "promote": {"evaluate"},
}


def reference_problems(pipeline: Pipeline) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Cross-step rules pydantic cannot express per field: (loc, message, fix) for each break."""
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    index = {s.id: i for i, s in enumerate(pipeline.steps)}
    seen: set[str] = set()
    for i, step in enumerate(pipeline.steps):
        if step.id in seen:
            problems.append((("steps", i, "id"), f"step id {step.id!r} is used twice", "give every step its own id"))
        seen.add(step.id)
        for j, name in enumerate(step.after or []):
            if name not in index:
                problems.append(
                    (("steps", i, "after", j), f"unknown step {name!r}", f"use one of: {', '.join(index)}")
                )
        for field_name, ref in _ref_fields(step):
            if ref not in index:
                problems.append(((("steps", i) + field_name), f"unknown step {ref!r}", f"use one of: {', '.join(index)}"))
            elif pipeline.steps[index[ref]].kind not in _REFERENCE_RULES[step.kind]:
                problems.append(
                    (
                        ("steps", i) + field_name,
                        f"step {ref!r} is a {pipeline.steps[index[ref]].kind} step and has no batch to read",
                        f"point at {_kinds_phrase(_REFERENCE_RULES[step.kind])} step",
                    )
                )
            elif ref == step.id:
                problems.append((("steps", i) + field_name, "a step cannot read its own output", "name an earlier step"))
    return problems


def _kinds_phrase(kinds: set[str]) -> str:
    names = sorted(kinds)
    text = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return ("an " if text[0] in "aeiou" else "a ") + text


def _ref_fields(step: StepBase) -> list[tuple[tuple[str | int, ...], str]]:
    if hasattr(step, "ref_fields"):  # step kinds defined in their own modules say where they read
        return step.ref_fields()
    if isinstance(step, (ValidateStep, PublishStep)):
        return [(("input",), step.input)]
    if isinstance(step, TransformStep):
        return [(("inputs", k), ref) for k, ref in enumerate(step.inputs)]
    return []


def identifier_ok(name: str) -> bool:
    return re.fullmatch(IDENTIFIER, name) is not None
