"""What the plan and `validate` know of a transform's history inputs (spec/history_inputs.py): the table each
reads, its Asset URI (the task's inlet), and the references that cannot be read."""

from __future__ import annotations

from dagspec.spec.graph import cycle_in, upstream
from dagspec.spec.history_inputs import HistoryInput
from dagspec.spec.model import Pipeline, PublishStep, StepBase, TableRef, TransformStep
from dagspec.spec.outputs import Place, output_of

Loc = tuple[str | int, ...]


def history_table(pipeline: Pipeline, entry: HistoryInput) -> TableRef | None:
    """The warehouse table the entry reads; None when its step publishes no warehouse table with batches."""
    if entry.table is not None:
        return entry.table
    return published_table(next((s for s in pipeline.steps if s.id == entry.step), None), pipeline)


def published_table(step: StepBase | None, pipeline: Pipeline) -> TableRef | None:
    if isinstance(step, PublishStep) and step.table is not None:
        return TableRef(schema=step.table.schema_, table=step.table.table)
    if isinstance(step, TransformStep) and step.materialization == "incremental":
        return output_of(pipeline, step)
    return None


def history_problems(pipeline: Pipeline) -> list[tuple[Loc, str, str]]:
    """History inputs that cannot be read: an unknown step, itself, a step with no published table, a table a
    step of this definition writes (name the step, so it runs first), a name used twice, a cycle."""
    problems: list[tuple[Loc, str, str]] = []
    ids = [s.id for s in pipeline.steps]
    for i, step in enumerate(pipeline.steps):
        if not isinstance(step, TransformStep):
            continue
        names: set[str] = set()
        for j, entry in enumerate(step.history):
            at: Loc = ("steps", i, "history", j)
            if entry.name in names:
                problems.append((at, f"history {entry.name!r} is listed twice", "list each history input once"))
            names.add(entry.name)
            if entry.step is not None:
                problems += [((*at, "step"), msg, fix) for msg, fix in _step_problems(pipeline, step, entry, ids)]
            else:
                problems += [((*at, "table"), msg, fix) for msg, fix in _table_problems(pipeline, entry)]
        if step.history and step.materialization == "view":
            problems.append((("steps", i, "history"), "a view cannot read history inputs (they are read per batch)",
                             "use materialization 'incremental' or 'table'"))
    cycle = cycle_in(upstream(pipeline)) if not problems else []
    history_edges = {(s.id, e.step) for s in pipeline.steps if isinstance(s, TransformStep) for e in s.history}
    if cycle and any(pair in history_edges for pair in zip(cycle, cycle[1:], strict=False)):
        at = next(k for k, s in enumerate(pipeline.steps) if s.id == cycle[0])
        problems.append((("steps", at, "history"), "steps depend on each other in a cycle: " + " -> ".join(cycle),
                         "a transform cannot read the history of a step that waits for it; remove that history "
                         "input or that step's dependency"))
    return problems


def _step_problems(pipeline: Pipeline, step: StepBase, entry: HistoryInput, ids: list[str]) -> list[tuple[str, str]]:
    if entry.step == step.id:
        return [("a transform cannot read its own history", "name another step's published table")]
    if entry.step not in ids:
        return [(f"unknown step {entry.step!r}", f"use one of: {', '.join(ids)}")]
    target = pipeline.step(entry.step)
    if published_table(target, pipeline) is None:
        return [(f"step {entry.step!r} ({target.kind}) publishes no warehouse table with batches",
                 "name a publish step with a 'table', or an incremental transform")]
    return []


def _table_problems(pipeline: Pipeline, entry: HistoryInput) -> list[tuple[str, str]]:
    wanted = entry.table.qualified.lower()
    for s in pipeline.steps:
        table = published_table(s, pipeline)
        if table is not None and table.qualified.lower() == wanted:
            return [(f"table {entry.table.qualified} is published by step {s.id!r} of this definition",
                     f"write {{\"step\": \"{s.id}\"}} instead, so that step runs first")]
    return []


def history_uris(pipeline: Pipeline, step: StepBase) -> tuple[str, ...]:
    """The Asset URIs of the tables a transform's history inputs read: the task's inlets."""
    if not isinstance(step, TransformStep):
        return ()
    found = []
    for entry in step.history:
        table = history_table(pipeline, entry)
        if table is not None:
            found.append(Place("warehouse", pipeline.warehouse.conn_id, table.schema_, table.table, "history", (),
                               True).uri)
    return tuple(dict.fromkeys(found))
