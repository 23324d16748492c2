"""A transform's history inputs: the whole published table of another step (or of another definition), read
with `{{ history('name') }}` the way dbt's `ref` reads a model, rather than only the current batch.

A history input names either a step of the same definition (a publish step with a warehouse table, or an
incremental transform), so the plan orders that step first, or a table another definition publishes, so the
task's Asset inlets name it. Each batch reads the table's batch_dates up to and including its own (within
`days` when given): a re-run of an old date never sees batches published after it.
"""

from __future__ import annotations

from pydantic import Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from dagspec.spec.base import StepId, Strict, TableRef


class HistoryInput(Strict):
    """A whole published table a transform reads with {{ history('name') }}: a step's, or another definition's."""

    step: StepId | None = Field(
        default=None, description="A step of this definition whose published table is read: a publish step with a "
        "'table', or an incremental transform. It runs before this transform. Named in the SQL by its id.",
        examples=["publish_orders"])
    table: TableRef | None = Field(
        default=None, description="A warehouse table another definition publishes (its Asset becomes the task's "
        "inlet). Named in the SQL as 'schema.table'.", examples=[{"schema": "analytics", "table": "orders"}])
    days: int | None = Field(
        default=None, ge=0, le=3660, strict=True,
        description="Read only batch_dates from the batch's date minus this many days up to the batch's date "
        "(default: every earlier batch_date and the batch's own).", examples=[121])
    allow_empty: StrictBool = Field(
        default=False, description="When the table holds no rows in the batch's range (a first run before the "
        "referenced step has published), go on reading it as empty instead of failing the run.", examples=[True])

    @model_validator(mode="after")
    def _one_source(self) -> HistoryInput:
        if (self.step is None) == (self.table is None):
            message = ("give exactly one of 'step' (a step of this definition) or 'table' (a table another "
                       "definition publishes)")
            fix = "write {\"step\": \"publish_orders\"} or {\"table\": {\"schema\": ..., \"table\": ...}}"
            # The error type spec/load.py lists with its own fix (a ValueError would carry none).
            raise PydanticCustomError("dagspec_problems", "{summary}",
                                      {"summary": message, "problems": [((), message, fix)]})
        return self

    @property
    def name(self) -> str:
        """How the SQL names it: {{ history('<name>') }}."""
        return self.step if self.step is not None else self.table.qualified
