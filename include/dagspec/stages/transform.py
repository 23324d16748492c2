"""Transform: a SQL file rendered with the window, run inside the warehouse, replacing one batch per run."""

from __future__ import annotations

from dagspec.spec.model import TransformStep
from dagspec.sql import read_sql_file, render, to_dialect
from dagspec.stages.context import RunContext, StepFailed


def run_transform(ctx: RunContext, step: TransformStep) -> dict[str, int]:
    template = read_sql_file(ctx.sql_root, step.sql)
    target = ctx.output_table(step.id)
    rows: dict[str, int] = {}
    with ctx.warehouse.session() as session:
        for batch in ctx.batches:

            def ref(step_id: str) -> str:
                if step_id not in step.inputs:
                    raise StepFailed(f"{step.sql}: ref({step_id!r}) is not in the step's inputs; add it to 'inputs'")
                return ctx.expose(session, step_id, batch)

            rendered = render(
                template,
                {**batch.params(), "ds": batch.batch_date.isoformat(), "params": ctx.pipeline.params},
                {"ref": ref},
            )
            read = step.dialect or session.dialect
            sql, names = to_dialect(rendered, read=read, write=session.dialect)
            if read != session.dialect:
                ctx.log.info("transform %s: %s transpiled from %s to %s by sqlglot", step.id, step.sql, read, session.dialect)
            unknown = [n for n in names if n not in batch.params()]
            if unknown:
                raise StepFailed(f"{step.sql}: unknown parameter(s) {', '.join(':' + n for n in unknown)}; "
                                 "available: :from_date, :to_date, :batch_date")
            params = {n: _naive(batch.params()[n]) for n in names}
            count = session.replace_batch(target.schema_, target.table, batch.batch_date, sql, params)
            rows[batch.batch_date.isoformat()] = count
            ctx.log.info("transform %s: batch_date=%s rows=%d -> %s", step.id, batch.batch_date, count, target.qualified)
    return rows


def _naive(value):
    # Warehouse sessions run in UTC; naive UTC compares cleanly with both TIMESTAMP and TIMESTAMPTZ.
    return value.replace(tzinfo=None) if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) else value
