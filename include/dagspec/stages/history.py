"""One batch's view of a history input (spec/history_inputs.py): the published table's batch_dates up to the
batch's own, made queryable in the warehouse session.

A join against a table that does not exist yet, or holds nothing in the range, gives 0 rows and publishes
them as if that were the answer: both stop the run here unless the input says `allow_empty`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from dagspec.errors import StepFailed
from dagspec.spec.history_checks import history_table
from dagspec.spec.history_inputs import HistoryInput
from dagspec.spec.model import Pipeline, TransformStep
from dagspec.warehouse.contract import Session
from dagspec.windows import Batch


def relation_name(step: TransformStep, entry: HistoryInput) -> str:
    """The session's scratch name of a history input (its position: a table name holds a dot)."""
    return f"__history_{step.history.index(entry)}"


def expose_history(pipeline: Pipeline, session: Session, step: TransformStep, entry: HistoryInput, batch: Batch,
                   log: logging.Logger) -> str:
    table = history_table(pipeline, entry)
    who = f"transform {step.id}: history {entry.name!r}"
    if table is None:  # validate refuses it; a Pipeline built in code may still hold one
        raise StepFailed(f"{who} publishes no warehouse table; name a publish step with a 'table'")
    backfill = (f"run {entry.step} for the earlier dates first (dagspec backfill {pipeline.dag_id} --from ... --to "
                "...)" if entry.step is not None else "run the definition that publishes it first")
    columns = session.table_columns(table.schema_, table.table)
    if columns is None:
        raise StepFailed(f"{who}: warehouse table {table.qualified} does not exist yet, so the SQL would read "
                         f"nothing (its columns are unknown even with allow_empty); {backfill}")
    if "batch_date" not in {c.lower() for c, _ in columns}:
        raise StepFailed(f"{who}: {table.qualified} has no batch_date column; history reads tables dagspec "
                         "publishes (a publish step's table, an incremental transform's)")
    first = batch.batch_date - timedelta(days=entry.days) if entry.days is not None else None
    relation = session.expose_history(relation_name(step, entry), table.schema_, table.table, first, batch.batch_date)
    # One scan of the range per batch, as the join's own (PostgreSQL, 1.5 M rows, 121 days: about 0.15 s).
    rows, earliest = session.arrow(f"SELECT count(*) AS n, min(batch_date) AS lo FROM {relation} AS h",
                                   {}).read_all().to_pylist()[0].values()
    span = f"batch_date {first or '(any)'}..{batch.batch_date}"
    if rows == 0 and not entry.allow_empty:
        raise StepFailed(f"{who}: {table.qualified} holds no rows with {span}, so the SQL would publish a result "
                         f"computed from nothing; {backfill}, or set \"allow_empty\": true on the history input if "
                         "an empty history is right")
    log.info("transform %s: history %s = %s, %s: %d rows from %s", step.id, entry.name, table.qualified, span,
             rows, earliest)
    wanted = max(first, pipeline.start_date) if first is not None else None
    if wanted is not None and earliest is not None and earliest > wanted:
        log.warning("transform %s: history %s holds batches only from %s, not from %s; %s", step.id, entry.name,
                    earliest, wanted, backfill)
    return relation
