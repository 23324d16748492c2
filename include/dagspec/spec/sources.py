"""Where an extract step reads: a SQL database, objects in S3 or GCS, BigQuery, or a Google Sheets worksheet."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from dagspec.spec.base import BigQueryConnId, BigQueryProject, ConnRef, Identifier, SheetsConnId, SpreadsheetId


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
    conn_id: BigQueryConnId = "bigquery_default"
    project: BigQueryProject = None
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


class SheetSource(ConnRef):
    """A Google Sheets worksheet (a hand-kept lookup, say), read whole on every run and typed by its declared columns."""

    kind: Literal["sheet"] = Field(description="Source kind: a Google Sheets worksheet.", examples=["sheet"])
    conn_id: SheetsConnId = "google_sheets_default"
    spreadsheet_id: SpreadsheetId
    worksheet: str = Field(default="Sheet1", min_length=1, max_length=100, description="Worksheet (tab) title.",
                           examples=["Regions"])
    columns: dict[Identifier, Annotated[str, Field(pattern=_COLUMN_TYPE)]] = Field(
        min_length=1,
        description="The columns to read, by their header in the first row, and their types (bool, int64, float64, "
        "string, date, timestamp, timestamptz, decimal(P,S), ...); other columns are ignored. A cell that does not "
        "hold its column's type fails the run naming the row; an empty cell is NULL.",
        examples=[{"region": "string", "target": "decimal(12,2)", "valid_from": "date"}],
    )
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000, strict=True,
                          description="Refuse a worksheet with more data rows than this.", examples=[5_000])


def _source_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "sql")
    return value.kind if isinstance(value, (SqlSource, ObjectSource, BigQuerySource, SheetSource)) else "sql"


# New source kinds join this union and _source_kind; a source without "kind" is a SQL source.
Source = Annotated[
    Annotated[SqlSource, Tag("sql")] | Annotated[ObjectSource, Tag("objects")] | Annotated[BigQuerySource, Tag("bigquery")]
    | Annotated[SheetSource, Tag("sheet")],
    Discriminator(_source_kind),
]
