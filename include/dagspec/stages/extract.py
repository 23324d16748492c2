"""Extract: rows of the window from a source, streamed in chunks into one staged partition per batch."""

from __future__ import annotations

from dagspec.connections import ConnectionInfo
from dagspec.sources import read_batches
from dagspec.spec.model import ExtractStep
from dagspec.stages.context import RunContext, StepFailed


def run_extract(ctx: RunContext, step: ExtractStep) -> dict[str, int]:
    info = ctx.resolver(step.source.conn_id)
    rows: dict[str, int] = {}
    for batch in ctx.batches:
        try:
            schema, chunks = read_batches(info, step.source, batch, step.chunk_rows)
            part = ctx.store.write_partition(step.target.schema_, step.target.table, batch.batch_date, schema, chunks)
        except StepFailed:
            raise
        except Exception as exc:
            raise StepFailed(source_error(info, exc)) from None
        rows[batch.batch_date.isoformat()] = part.rows
        ctx.log.info("extract %s: batch_date=%s rows=%d -> %s", step.id, batch.batch_date, part.rows, part.path)
    return rows


def source_error(info: ConnectionInfo, exc: Exception) -> str:
    # SQLAlchemy appends the SQL and a docs link; the first line is what the database said.
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return info.scrub(f"source connection {info.conn_id!r} ({info.conn_type}): {type(exc).__name__}: {first}")
