"""The rules across the steps of one valid definition that its steps' models cannot check alone."""

from __future__ import annotations

from dagspec.spec.condition_checks import condition_column_problems
from dagspec.spec.history_checks import history_problems
from dagspec.spec.model import Pipeline
from dagspec.spec.outputs import drop_rows_problems, overlaps
from dagspec.spec.rollout_checks import rollout_problems


def cross_step_problems(pipeline: Pipeline) -> list[tuple[tuple[str | int, ...], str, str]]:
    """(loc, message, fix) for two steps writing one place, a drop_rows check beside another check of its input,
    history inputs that cannot be read, a canary rollout that could never be decided, and a row_condition on a
    column its batch will not have."""
    return (overlaps(pipeline) + drop_rows_problems(pipeline) + history_problems(pipeline) + rollout_problems(pipeline)
            + condition_column_problems(pipeline))
