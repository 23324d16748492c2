"""The definition model, v1: what a JSON drop may say, with the rules that make it runnable.

Every field has a description because the JSON Schema published from this model is what editors
show while people type a definition.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from dagspec.spec.schedule import check_schedule

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
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
    )


class TableRef(Strict):
    schema_: Identifier = Field(alias="schema", description="Schema (dataset) name.")
    table: Identifier = Field(description="Table name.")

    @property
    def qualified(self) -> str:
        return f"{self.schema_}.{self.table}"


class SqlSource(ConnRef):
    """Rows from a SQL database reachable through SQLAlchemy."""

    kind: Literal["sql"] = Field(default="sql", description="Source kind (default: sql).")
    conn_id: str = Field(
        default="dagspec_source",
        description="Airflow Connection of the source database (postgres, mysql, sqlite, or any SQLAlchemy URL).",
        pattern=r"^[A-Za-z0-9_.-]{1,250}$",
    )
    schema_: Identifier | None = Field(default=None, alias="schema", description="Source schema, if not the default.")
    table: Identifier | None = Field(default=None, description="Table to read. Give either table or query.")
    columns: list[Identifier] | None = Field(default=None, description="Columns to read (default: all).")
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
    )

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of 'table' or 'query'")
        if self.query is not None and (self.columns or self.incremental_column):
            raise ValueError("'columns' and 'incremental_column' go with 'table'; a query selects its own rows")
        return self


def _source_kind(value: Any) -> str:
    if isinstance(value, dict):
        return value.get("kind", "sql")
    return getattr(value, "kind", "sql")


# New source kinds join this union; a source without "kind" is a SQL source.
Source = Annotated[Union[Annotated[SqlSource, Tag("sql")]], Discriminator(_source_kind)]


class StepBase(Strict):
    id: StepId
    description: str = Field(default="", description="What this step does, shown in the task's docs.")
    after: list[StepId] | None = Field(
        default=None,
        description="Steps this one waits for. Default: the step listed just before it. [] starts at the beginning.",
    )

    def refs(self) -> list[str]:
        """Steps whose output this step reads (they must exist and come earlier in the graph)."""
        return []


class ExtractStep(StepBase):
    """Copy rows for the run's window from a source into staged Parquet partitions."""

    kind: Literal["extract"]
    source: Source
    target: TableRef = Field(description="Where the batch is staged: <store>/<schema>/<table>/batch_date=YYYY-MM-DD/.")
    chunk_rows: int = Field(default=50_000, ge=100, description="Rows fetched per round trip; bounds memory.")


class Expectation(Strict):
    """One Great Expectations expectation, in GX's own JSON form plus a severity."""

    type: str = Field(
        description="A Great Expectations expectation type.", examples=["expect_column_values_to_not_be_null"]
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="The expectation's arguments.")
    meta: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["fail", "warn"] = Field(
        default="fail", description="fail: stop the run before anything is published. warn: record and continue."
    )

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        from dagspec.spec.expectation_types import check_expectation_type

        return check_expectation_type(value)


class ValidateStep(StepBase):
    """Run Great Expectations on a step's batch; a failed 'fail' expectation stops the run."""

    kind: Literal["validate"]
    input: StepId = Field(description="The extract or transform step whose batch is checked.")
    expectations: list[Expectation] = Field(min_length=1)

    def refs(self) -> list[str]:
        return [self.input]


class TransformStep(StepBase):
    """Run a SQL file inside the warehouse, once per batch; its rows replace that batch in `target`."""

    kind: Literal["transform"]
    sql: str = Field(
        description="Path of a SQL file under include/sql/. In it, {{ ref('step_id') }} names a step's batch, "
        ":from_date and :to_date are the window (bound parameters).",
        examples=["orders/daily_revenue.sql"],
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.sql$",
    )
    dialect: Literal["duckdb", "postgres", "redshift", "bigquery", "mysql", "sqlite", "snowflake"] | None = Field(
        default=None,
        description="Dialect the SQL file is written in (default: the warehouse's). Other dialects are "
        "transpiled with sqlglot, and the task log says so.",
    )
    inputs: list[StepId] = Field(default_factory=list, description="Steps referenced with ref() in the SQL.")
    target: TableRef | None = Field(
        default=None, description="Warehouse table the result is kept in (default: dagspec_work.<dag_id>__<step id>)."
    )

    @field_validator("sql")
    @classmethod
    def _inside_sql_dir(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("the SQL file must be inside include/sql/ (no '..')")
        return value

    def refs(self) -> list[str]:
        return list(self.inputs)


class Export(Strict):
    format: Literal["parquet"] = "parquet"
    target: TableRef | None = Field(default=None, description="Store location (default: the warehouse table's).")


class PublishStep(StepBase):
    """Replace the batch's partition in a warehouse table (one transaction) and/or export it to the store."""

    kind: Literal["publish"]
    input: StepId = Field(description="The extract or transform step whose batch is published.")
    table: TableRef | None = Field(default=None, description="Warehouse table to load.")
    export: Export | None = Field(default=None, description="Also write the batch to the object store.")

    @model_validator(mode="after")
    def _somewhere(self) -> PublishStep:
        if self.table is None and self.export is None:
            raise ValueError("a publish step needs 'table', 'export' or both")
        if self.export is not None and self.export.target is None and self.table is None:
            raise ValueError("'export' needs a 'target' when there is no 'table'")
        return self

    def refs(self) -> list[str]:
        return [self.input]


Step = Annotated[Union[ExtractStep, ValidateStep, TransformStep, PublishStep], Field(discriminator="kind")]

DAG_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"


class Pipeline(Strict):
    """A pipeline definition: one JSON file, one Airflow DAG."""

    schema_uri: str | None = Field(default=None, alias="$schema", description="JSON Schema for editors.")
    version: Literal[1] = Field(default=1, description="Definition format version.")
    dag_id: str = Field(pattern=DAG_ID, description="Unique DAG id: letters, digits, '_', '.', '-'.")
    description: str = ""
    owner: str = Field(default="dagspec", min_length=1)
    tags: list[str] = Field(default_factory=list)
    schedule: str | None = Field(
        default="@daily",
        description="Cron expression or preset (@daily, @weekly, @monthly, @yearly), at most daily; null: manual only.",
        examples=["@daily", "0 3 * * *"],
    )
    start_date: date = Field(description="First date to process, YYYY-MM-DD.")
    end_date: date | None = Field(default=None, description="Last date to process (optional), YYYY-MM-DD.")
    catchup: bool = Field(default=False, description="Run every missed interval since start_date.")
    retries: int = Field(default=1, ge=0, le=20)
    retry_delay_minutes: float = Field(default=5, ge=0)
    max_active_runs: int = Field(default=1, ge=1, le=64)
    batch_days: int = Field(default=1, ge=1, description="Days per staged partition when a window spans several.")
    warehouse: ConnRef = Field(
        default_factory=lambda: ConnRef(conn_id="dagspec_warehouse"),
        description="Where transforms run and tables are published (default: the embedded DuckDB).",
    )
    store: ConnRef = Field(
        default_factory=lambda: ConnRef(conn_id="dagspec_store"),
        description="Object store for staged and exported partitions (default: a local folder).",
    )
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, description="Values for SQL Jinja.")
    steps: list[Step] = Field(min_length=1)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else check_schedule(value)

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
    "publish": KIND_OUTPUTS,
    "transform": KIND_OUTPUTS,
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
                        "point at an extract or transform step",
                    )
                )
            elif ref == step.id:
                problems.append((("steps", i) + field_name, "a step cannot read its own output", "name an earlier step"))
    return problems


def _ref_fields(step: StepBase) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(step, (ValidateStep, PublishStep)):
        return [(("input",), step.input)]
    if isinstance(step, TransformStep):
        return [(("inputs", k), ref) for k, ref in enumerate(step.inputs)]
    return []


def identifier_ok(name: str) -> bool:
    return re.fullmatch(IDENTIFIER, name) is not None
