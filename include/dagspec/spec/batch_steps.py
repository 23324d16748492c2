"""The steps that make and check a batch: extract (from a source), validate (Great Expectations) and
transform (SQL in the warehouse)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictFloat, StrictInt, ValidationInfo, field_validator, model_validator

from dagspec.spec.base import Identifier, StepBase, StepId, Strict, TableRef
from dagspec.spec.history_inputs import HistoryInput
from dagspec.spec.sources import Source


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
    """Run Great Expectations on a step's batch; a failed 'fail' expectation stops the run (or, with on_fail
    'drop_rows', drops the rows that failed it)."""

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
    on_fail: Literal["stop", "drop_rows"] = Field(
        default="stop",
        description="stop: a failed 'fail' expectation stops the run. drop_rows: rows failing a 'fail' check that "
        "names failing rows (column value, null, set, regex, length, uniqueness checks computed by dagspec's SQL) "
        "go to 'quarantine' (required) and only the passing rows flow on (kept in <input table>__passed); "
        "table-level and aggregate 'fail' checks (row count, mean, sum, ...) are evaluated again on the passing "
        "rows and still stop the run when they fail, as does a failed check that cannot name its rows.",
        examples=["drop_rows"],
    )
    quarantine: TableRef | None = Field(
        default=None, validate_default=True,
        description="Warehouse table that receives the batch's failing rows (with the failed checks).",
        examples=[{"schema": "quarantine", "table": "orders"}],
    )
    max_dropped: StrictInt | StrictFloat | None = Field(
        default=None, validate_default=True,
        description="on_fail 'drop_rows' only: stop the run anyway (nothing flows on) when more rows would be "
        "dropped: a whole number is a row count, a number below 1 a share of the batch's rows (0.1 = 10%).",
        examples=[100, 0.05],
    )

    @field_validator("quarantine")
    @classmethod
    def _drop_rows_needs_quarantine(cls, value: TableRef | None, info: ValidationInfo) -> TableRef | None:
        if value is None and info.data.get("on_fail") == "drop_rows":
            raise ValueError("on_fail 'drop_rows' needs a quarantine table for the dropped rows: add "
                             "\"quarantine\": {\"schema\": ..., \"table\": ...}")
        return value

    @field_validator("max_dropped")
    @classmethod
    def _limit_needs_drop_rows(cls, value: int | float | None, info: ValidationInfo) -> int | float | None:
        if value is not None and info.data.get("on_fail") != "drop_rows":
            raise ValueError("'max_dropped' limits on_fail 'drop_rows': add \"on_fail\": \"drop_rows\" or "
                             "remove it")
        if isinstance(value, int) and value < 0:
            raise ValueError(f"'max_dropped' {value} is below 0: give a row count (0 or more) or a share below 1")
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"'max_dropped' {value} is a share of the batch's rows: give a number between 0 and 1 "
                             "(0.05 = 5%), or a whole number of rows")
        return value

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
        "{{ history('name') }} the published batches of a 'history' input, :from_date and :to_date are the window "
        "(bound parameters). Give either sql or query.",
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
    history: list[HistoryInput] = Field(
        default_factory=list, max_length=20,
        description="Whole published tables read with {{ history('name') }} (not only the current batch): a step's "
        "(it runs first) or another definition's table. Each batch reads batch_dates up to its own, within 'days'.",
        examples=[[{"step": "publish_orders", "days": 121}]], json_schema_extra={"default": []})
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
        # A history step is waited for like an input, so the plan runs its publish first.
        return list(dict.fromkeys([*self.inputs, *(h.step for h in self.history if h.step is not None)]))
