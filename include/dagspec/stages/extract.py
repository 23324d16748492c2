"""Extract: rows of the window from a source, streamed in chunks into one staged partition per batch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from dagspec.connections import ConnectionInfo
from dagspec.errors import disk_full, first_line
from dagspec.secrets import scrub_known
from dagspec.sources import AnySource, read_batches
from dagspec.spec.model import ExtractStep
from dagspec.sql import render_window
from dagspec.stages.context import RunContext, StepFailed
from dagspec.stages.extract_range import chunks_of, read_chunk, record_batches, splittable
from dagspec.windows import Batch

if TYPE_CHECKING:
    import pyarrow as pa

    from dagspec.store import PartitionInfo

T = TypeVar("T")


def run_extract(ctx: RunContext, step: ExtractStep) -> dict[str, int]:
    info = ctx.resolver(step.source.conn_id)
    rows: dict[str, int] = {}
    for chunk in chunks_of(ctx.batches, ctx.pipeline.batch_size):
        split = None
        if splittable(step, chunk):
            for batch in chunk:  # before the one read: nothing of the chunk is written when any batch would clash
                refuse_overlap(ctx, step, batch)
            split = _guarded(ctx, step, info, chunk[0], lambda chunk=chunk: read_chunk(info, step, chunk))
            if split is not None:
                ctx.log.info("extract %s: one read for %d partitions %s .. %s", step.id, len(chunk),
                             chunk[0].key.label, chunk[-1].key.label)
        for batch in chunk:
            if split is None:
                refuse_overlap(ctx, step, batch)
            part = _guarded(ctx, step, info, batch, lambda batch=batch, split=split: _write(ctx, step, info, batch, split))
            rows[batch.key.label] = part.rows
            ctx.log.info("extract %s: batch_date=%s rows=%d -> %s", step.id, batch.key.label, part.rows, part.path)
    warn_null_keys(ctx, step, info)
    return rows


def _write(ctx: RunContext, step: ExtractStep, info: ConnectionInfo, batch: Batch,
           split: tuple[pa.Schema, dict[Batch, pa.Table]] | None) -> PartitionInfo:
    if split is None:
        schema, chunks = read_batches(info, _rendered(ctx, step.source, batch), batch, step.chunk_rows)
    else:
        schema, chunks = split[0], record_batches(split[1][batch], step.chunk_rows)
    return ctx.store.write_partition(step.target.schema_, step.target.table, batch.key, schema, chunks,
                                     window=(batch.from_at, batch.to_at))


def _guarded(ctx: RunContext, step: ExtractStep, info: ConnectionInfo, batch: Batch, work: Callable[[], T]) -> T:
    try:
        return work()
    except StepFailed:
        raise
    except Exception as exc:
        # Reading and writing interleave (the store drains the source's stream), so the error names the side
        # that failed: a full or read-only store is not the source's fault.
        message = store_error(ctx, step, batch, exc) if disk_full(exc) else source_error(info, exc)
        raise StepFailed(message) from None


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
