"""The publish step and where it sends a batch: a warehouse table, the object store, BigQuery, a Google Sheet, e-mail."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dagspec.spec.base import (
    BigQueryConnId,
    BigQueryProject,
    Identifier,
    SheetsConnId,
    SpreadsheetId,
    StepBase,
    StepId,
    Strict,
    TableRef,
)


class Export(Strict):
    format: Literal["parquet", "csv", "xlsx"] = Field(
        default="parquet", description="File format of the exported partition (xlsx: one Excel workbook, at most "
        "1,048,575 rows; strings are never written as formulas).", examples=["parquet", "xlsx"])
    target: TableRef | None = Field(default=None, description="Store location (default: the warehouse table's).",
                                    examples=[{"schema": "exports", "table": "daily_revenue"}])
    conn_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,250}$",
        description="Store connection to export to (an 'fs', 'aws' or 'google_cloud_platform' connection; "
        "default: the pipeline's store).",
        examples=["lake_s3"],
    )
    csv_formulas: Literal["escape", "keep"] = Field(
        default="escape",
        description="csv: a text cell a spreadsheet would run as a formula (starting with =, @, a tab, or + or - "
        "when it is not a plain number) gets a leading apostrophe (escape), or is written as it is (keep: for "
        "readers that are not spreadsheets).", examples=["keep"])


class BigQueryTarget(Strict):
    """A BigQuery table partitioned by batch_date, loaded from Parquet with a load job."""

    conn_id: BigQueryConnId = "bigquery_default"
    project: BigQueryProject = None
    dataset: Identifier = Field(description="Dataset of the table.", examples=["analytics"])
    table: Identifier = Field(description="Table name.", examples=["daily_revenue"])
    unique_key: list[Identifier] | None = Field(
        default=None, min_length=1,
        description="MERGE on these columns instead of replacing the batch's partition.",
        examples=[["order_id"]],
    )


class SheetTarget(Strict):
    """A Google Sheets worksheet refreshed after each load: cleared, then header and rows written."""

    conn_id: SheetsConnId = "google_sheets_default"
    spreadsheet_id: SpreadsheetId
    worksheet: str = Field(default="Sheet1", min_length=1, max_length=100, description="Worksheet (tab) title.",
                           examples=["Daily revenue"])
    max_rows: int = Field(default=100_000, ge=1, le=10_000_000, strict=True,
                          description="Refuse to write more than this many rows (Sheets holds 10 million cells).",
                          examples=[10_000])
    mode: Literal["batch", "table", "append"] = Field(
        default="batch",
        description="batch: the worksheet shows the newest batch only. table: the whole published warehouse table, "
        "every batch with its batch_date (for Tableau or Looker Studio extracts; needs the step's 'table'). "
        "append: each batch's rows are added under the earlier ones with a first column batch_date; a re-run "
        "replaces its own batch's rows.",
        examples=["table", "append"])


class EmailTarget(Strict):
    """The batch sent to people after it is published: an HTML table in the message, or a CSV/Excel attachment."""

    to: list[Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+$")]] = Field(
        min_length=1, max_length=50, description="Addresses the report goes to.",
        examples=[["finance@example.com"]])
    smtp_conn_id: str = Field(default="smtp_default", pattern=r"^[A-Za-z0-9_.-]{1,250}$",
                              description="Airflow Connection of the SMTP server (as for alerts).",
                              examples=["smtp_default"])
    subject: str = Field(
        default="{{ dag_id }}: {{ ds }}", min_length=1, max_length=200,
        description="Subject line, a Jinja template with the batch's variables (ds, batch_date, params, dag_id).",
        examples=["Daily revenue {{ ds }}"])
    format: Literal["html", "csv", "xlsx"] = Field(
        default="html", description="html: the rows as a table in the message. csv/xlsx: attached as one file "
        "(a CSV cell that a spreadsheet would run as a formula gets a leading apostrophe).",
        examples=["xlsx"])
    max_rows: int = Field(default=5_000, ge=1, le=1_000_000, strict=True,
                          description="A batch with more rows is not sent: the step fails, naming the limit.",
                          examples=[1_000])
    max_bytes: int = Field(default=10_000_000, ge=1_000, le=25_000_000, strict=True,
                           description="Largest message (table or attachment) sent; most mail servers refuse 25 MB.",
                           examples=[5_000_000])


class PublishTable(TableRef):
    mode: Literal["batches", "snapshot"] = Field(
        default="batches",
        description="batches: every batch is kept (a re-run replaces its own batch_date). snapshot: after the load, "
                    "only the 'keep' greatest batch_dates stay, in the same transaction (for full-refresh extracts).",
        examples=["snapshot"])
    keep: int | None = Field(default=None, ge=1, description="Snapshot mode: how many batches (greatest batch_date "
                             "first) to keep; 1 when omitted.", examples=[1, 7])
    post_sql: list[Annotated[str, Field(min_length=1, max_length=10_000)]] = Field(
        default_factory=list, max_length=20,
        description="Statements run after a successful load, inside the load's transaction (DuckDB, PostgreSQL, "
                    "Redshift, where sqlglot's Redshift dialect reads each first; after it on BigQuery): ANALYZE, "
                    "GRANT, REVOKE, COMMENT ON or ALTER ... OWNER TO. Jinja: "
                    "{{ this }} is the quoted table, plus the batch's variables (ds, batch_date, params...).",
        examples=[["ANALYZE {{ this }}", "GRANT SELECT ON {{ this }} TO reporting"]], json_schema_extra={"default": []})

    @model_validator(mode="after")
    def _keep_needs_snapshot(self) -> PublishTable:
        if self.keep is not None and self.mode != "snapshot":
            raise ValueError("'keep' only applies to \"mode\": \"snapshot\"; add it or drop 'keep'")
        return self

    @property
    def keep_batches(self) -> int | None:
        return (self.keep or 1) if self.mode == "snapshot" else None


class PublishStep(StepBase):
    """Replace the batch's partition in a warehouse table (one transaction) and/or export it to the store."""

    kind: Literal["publish"] = Field(description="Step kind: load a batch into a table and/or export it.",
                                     examples=["publish"])
    input: StepId = Field(description="The extract or transform step whose batch is published.",
                          examples=["daily_revenue"])
    table: PublishTable | None = Field(default=None, description="Warehouse table to load; dagspec adds a DATE column "
                                       "batch_date (the batch's day) to every row.",
                                       examples=[{"schema": "analytics", "table": "daily_revenue"},
                                                 {"schema": "analytics", "table": "customers", "mode": "snapshot"}])
    export: Export | None = Field(default=None, description="Also write the batch to the object store.",
                                  examples=[{"format": "parquet"}])
    bigquery: BigQueryTarget | None = Field(default=None, description="Also load the batch into BigQuery.",
                                            examples=[{"dataset": "analytics", "table": "daily_revenue"}])
    sheet: SheetTarget | None = Field(
        default=None, description="Also refresh a Google Sheets worksheet.",
        examples=[{"spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms", "worksheet": "Daily revenue"}],
    )

    email: EmailTarget | None = Field(
        default=None, description="Also send the batch by e-mail once every other target has it.",
        examples=[{"to": ["finance@example.com"], "format": "xlsx", "subject": "Daily revenue {{ ds }}"}],
    )

    @model_validator(mode="after")
    def _somewhere(self) -> PublishStep:
        if all(t is None for t in (self.table, self.export, self.bigquery, self.sheet, self.email)):
            raise ValueError("a publish step needs at least one of 'table', 'export', 'bigquery', 'sheet', 'email'")
        if self.export is not None and self.export.target is None and self.table is None:
            raise ValueError("'export' needs a 'target' when there is no 'table'")
        if self.sheet is not None and self.sheet.mode == "table" and self.table is None:
            raise ValueError("'sheet' with \"mode\": \"table\" shows the published warehouse table: add a 'table' "
                             "to this step, or use \"mode\": \"append\"")
        return self

    def refs(self) -> list[str]:
        return [self.input]
