"""Publish: replace the batch's partition in a warehouse table (one transaction) and export it to the store."""

from __future__ import annotations

from dagspec.spec.model import PublishStep
from dagspec.stages.context import RunContext


def run_publish(ctx: RunContext, step: PublishStep) -> dict[str, int]:
    rows: dict[str, int] = {}
    with ctx.warehouse.session() as session:
        for batch in ctx.batches:
            rel = ctx.expose(session, step.input, batch)
            if step.table is not None:
                count = session.replace_batch(step.table.schema_, step.table.table, batch.batch_date, f"SELECT * FROM {rel}", {})
                ctx.log.info("publish %s: batch_date=%s rows=%d -> table %s", step.id, batch.batch_date, count,
                             step.table.qualified)
                rows[batch.batch_date.isoformat()] = count
            if step.export is not None:
                dest = step.export.target or step.table
                reader = session.arrow(f"SELECT * FROM {rel}", {})
                part = ctx.store.write_partition(dest.schema_, dest.table, batch.batch_date, reader.schema, reader)
                ctx.log.info("publish %s: batch_date=%s rows=%d -> %s", step.id, batch.batch_date, part.rows, part.path)
                rows.setdefault(batch.batch_date.isoformat(), part.rows)
    return rows
