"""A row_condition naming a column its batch will not have, caught by `dagspec validate` where the definition
itself says which columns the batch has: an extract reading listed columns of a table, or a sheet's declared
columns. Elsewhere the columns are known only at run time, where the validate step refuses the same mistake
before GX runs (spec/suites.py absent_condition_columns)."""

from __future__ import annotations

from dagspec.spec.model import ExtractStep, Pipeline, ValidateStep
from dagspec.spec.row_condition import ConditionError, condition_columns
from dagspec.spec.sources import SheetSource, SqlSource

# Added to every staged batch by dagspec; a condition on them is fine whatever the source lists.
_ADDED = ("batch_date", "batch_start")


def _declared_columns(step: object) -> list[str] | None:
    if not isinstance(step, ExtractStep):
        return None
    source = step.source
    if isinstance(source, SqlSource) and source.columns:
        return [*source.columns, *([source.incremental_column] if source.incremental_column else [])]
    if isinstance(source, SheetSource):
        return list(source.columns)
    return None


def condition_column_problems(pipeline: Pipeline) -> list[tuple[tuple[str | int, ...], str, str]]:
    by_id = {s.id: s for s in pipeline.steps}
    problems = []
    for i, step in enumerate(pipeline.steps):
        if not isinstance(step, ValidateStep):
            continue
        declared = _declared_columns(by_id.get(step.input))
        if declared is None:
            continue
        for j, expectation in enumerate(step.expectations):
            try:
                named = condition_columns(expectation.kwargs)
            except ConditionError:
                continue  # reported at the expectation itself
            absent = [c for c in named if c not in declared and c not in _ADDED]
            if absent:
                problems.append(
                    (
                        ("steps", i, "expectations", j, "kwargs", "row_condition"),
                        f"the row_condition names column(s) {', '.join(absent)}, which step {step.input!r} "
                        f"does not read (it reads: {', '.join(declared)})",
                        f"name one of those columns, or add {', '.join(absent)} to its source's columns",
                    )
                )
    return problems
