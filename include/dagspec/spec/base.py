"""The building blocks every part of a definition shares: strict models, plain identifiers, table and
connection references, and what every step has (id, description, after).

Every field has a description because the JSON Schema published from the model is what editors
show while people type a definition.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dagspec.store_names import RESERVED

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
# A BigQuery source and a BigQuery target reach BigQuery the same way.
BigQueryConnId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_.-]{1,250}$", examples=["bigquery_default", "gcp_analytics"],
          description="BigQuery connection (google_cloud_platform; project in extra.project)."),
]
SheetsConnId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_.-]{1,250}$", examples=["google_sheets_default"],
          description="Connection holding the service account (google_cloud_platform)."),
]
SpreadsheetId = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{10,100}$", examples=["1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"],
          description="The id in the sheet's URL: docs.google.com/spreadsheets/d/<id>/edit."),
]
BigQueryProject = Annotated[
    str | None,
    Field(pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$", description="Project of the table (default: the connection's).",
          examples=["acme-analytics"]),
]


class Strict(BaseModel):
    # defer_build: a worker running one task imports every model but validates one definition; building the ~45
    # validators at import cost more than the one Pipeline validator built on first use (about 20% of its parse).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


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
