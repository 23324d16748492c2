"""Extract: rows of the window from a source, streamed in chunks into one staged partition per batch."""

from __future__ import annotations

from datetime import timedelta

from dagspec.connections import ConnectionInfo
from dagspec.errors import disk_full, first_line
from dagspec.secrets import scrub_known
from dagspec.sources import AnySource, read_batches
from dagspec.spec.model import ExtractStep
from dagspec.sql import render_window
from dagspec.stages.context import RunContext, StepFailed
from dagspec.windows import Batch


def run_extract(ctx: RunContext, step: ExtractStep) -> dict[str, int]:
    info = ctx.resolver(step.source.conn_id)
    rows: dict[str, int] = {}
    for batch in ctx.batches:
        refuse_overlap(ctx, step, batch)
        try:
            schema, chunks = read_batches(info, _rendered(ctx, step.source, batch), batch, step.chunk_rows)
            part = ctx.store.write_partition(step.target.schema_, step.target.table, batch.key, schema, chunks,
                                             window=(batch.from_at, batch.to_at))
        except StepFailed:
            raise
        except Exception as exc:
            # Reading and writing interleave (the store drains the source's stream), so the error names the side
            # that failed: a full or read-only store is not the source's fault.
            message = store_error(ctx, step, batch, exc) if disk_full(exc) else source_error(info, exc)
            raise StepFailed(message) from None
        rows[batch.key.label] = part.rows
        ctx.log.info("extract %s: batch_date=%s rows=%d -> %s", step.id, batch.key.label, part.rows, part.path)
    warn_null_keys(ctx, step, info)
    return rows


def warn_null_keys(ctx: RunContext, step: ExtractStep, info: ConnectionInfo) -> None:
    from dagspec.sources.null_keys import null_key_rows

    missing = null_key_rows(info, step.source)
    if missing:
        ctx.log.warning("extract %s: %d row(s) of %s have a NULL %s; no window holds them, so no run stages them "
                        "(fix: give them a value, or read the table with a 'query' that maps NULL to a date)",
                        step.id, missing, step.source.table, step.source.incremental_column)


def _rendered(ctx: RunContext, source: AnySource, batch: Batch) -> AnySource:
    """The source with its query rendered like every SQL of a definition ({{ ds }}, {{ params.x }}, ...);
    the window itself stays a bound :from_date/:to_date."""
    query = getattr(source, "query", None)
    if not query or ("{{" not in query and "{%" not in query and "{#" not in query):
        return source
    try:
        text = render_window(query, batch.from_at, batch.to_at, ctx.pipeline.params, batch_date=batch.batch_date)
    except Exception as exc:  # `dagspec validate` reports these before anything runs
        raise StepFailed(f"the source query does not render: {type(exc).__name__}: {exc}") from None
    return source.model_copy(update={"query": text})


def refuse_overlap(ctx: RunContext, step: ExtractStep, batch: Batch) -> None:
    """A batch whose days another partition already holds (a run cut differently: other batch_days, a window
    starting mid-batch) would stage those rows twice, and every step after it would count them twice."""
    target = step.target
    clash = ctx.store.overlapping(target.schema_, target.table, batch.key, (batch.from_at, batch.to_at))
    if not clash:
        return
    other, lo, hi = clash[0]
    first, last = min(lo, batch.from_at).date(), (max(hi, batch.to_at) - timedelta(microseconds=1)).date()
    raise StepFailed(
        f"extract {step.id}: {batch.key.segment} [{batch.from_at:%Y-%m-%d %H:%M}, {batch.to_at:%Y-%m-%d %H:%M}) "
        f"overlaps the staged partition {target.qualified} {other.segment}, which holds [{lo:%Y-%m-%d %H:%M}, "
        f"{hi:%Y-%m-%d %H:%M}); writing it would hold those rows twice. Nothing was written "
        f"(fix: re-run {first} .. {last} as one window cut the same way, or delete the partitions of "
        f"{target.qualified} from {first} to {last} before re-running)")


def store_error(ctx: RunContext, step: ExtractStep, batch: Batch, exc: Exception) -> str:
    return scrub_known(
        f"store connection {ctx.pipeline.store.conn_id!r}: writing {step.target.qualified} "
        f"{batch.key.segment} failed: {first_line(exc)}. Nothing was written and the "
        f"previous partition (if any) is unchanged (fix: free space in the store, or point the store "
        f"connection at a larger one)")


def source_error(info: ConnectionInfo, exc: Exception) -> str:
    # SQLAlchemy appends the SQL and a docs link; the first line is what the database said.
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return info.scrub(f"source connection {info.conn_id!r} ({info.conn_type}): {type(exc).__name__}: {first}")
