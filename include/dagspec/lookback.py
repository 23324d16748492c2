"""Self-healing lookback: the earlier batches a run for date D also processes.

A gap is a batch with batch_date in [D - lookback, D), not before the pipeline's start_date, whose
extract partitions are not all in the store or whose last recorded run failed. At a sub-daily grain the
lookback counts partitions instead of days: the `lookback` schedule intervals that end where the run's own
window starts (a day the cron never fires on holds none), each judged by its own partition and run record. Batches are cut from
the earlier scheduled windows exactly as their own runs would have cut them, so the overlap guard of
the extract stage sees the same partitions either way. The set is computed once per run (in Airflow by
the run's first task, shared through XCom) and handed to every step as plain data, so the steps of one
run agree even while the run writes the partitions that made them gaps.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from dagspec.partitions import PartitionKey
from dagspec.plan import plan_of
from dagspec.spec.schedule import window_for
from dagspec.subdaily import cut, day_window
from dagspec.windows import Batch, Window, local_date, local_midnight

if TYPE_CHECKING:
    from dagspec.spec.model import Pipeline
    from dagspec.store import Store

MAX_LOOKBACK = 366  # the definition's bound, also applied to an Airflow Variable's value
SEARCH_DAYS = 400  # how far back the intervals of a sparse sub-daily cron are looked for


def candidate_batches(pipeline: Pipeline, own: Window, day: date, lookback: int) -> list[Batch]:
    """The batches of the scheduled windows before `own` whose batch_date is in [day - lookback, day) and not
    before start_date, in date order."""
    if pipeline.grain_cron is not None:
        return earlier_intervals(pipeline, own, lookback)
    first = max(day - timedelta(days=lookback), pipeline.start_date)
    starts: dict[datetime, Window] = {}
    for n in range((day - first).days):
        start, end = window_for(pipeline.schedule, first + timedelta(days=n), pipeline.timezone)
        if end <= own.start:
            starts.setdefault(start, Window(start, end))
    out = [b for w in starts.values() for b in pipeline.batches_of(w)
           if first <= b.batch_date < day]
    return sorted(out, key=lambda b: b.batch_date)


def earlier_intervals(pipeline: Pipeline, own: Window, count: int) -> list[Batch]:
    """The last `count` schedule intervals ending at or before `own.start` and starting at or after start_date,
    oldest first: walked back a local day at a time, since a day holds every interval that starts on it."""
    expr, tz = pipeline.grain_cron, pipeline.timezone
    if expr is None:
        return []
    floor = local_midnight(pipeline.start_date, tz)
    day = local_date(own.start, tz)
    out: list[Batch] = []
    for _ in range(SEARCH_DAYS):
        if len(out) >= count or day < pipeline.start_date:
            break
        lo, hi = day_window(expr, day, tz)
        hi = min(hi, own.start)
        if lo < hi:
            out = [*(b for b in cut(Window(lo, hi), expr, tz) if b.from_at >= floor), *out]
        day -= timedelta(days=1)
    return out[-count:] if count else []


def gap_batches(pipeline: Pipeline, store: Store, own: Window, day: date, lookback: int) -> list[Batch]:
    """The candidates that are not loaded: an extract partition missing, or the date's last run failed."""
    if lookback <= 0:
        return []
    tables = [(s.step.target.schema_, s.step.target.table) for s in plan_of(pipeline).steps if s.kind == "extract"]
    gaps = []
    for batch in candidate_batches(pipeline, own, day, lookback):
        missing = any(store.manifest_digest(schema, table, batch.key) is None for schema, table in tables)
        if missing or store.run_state(pipeline.dag_id, batch.key) == "failed":
            gaps.append(batch)
    return gaps


def with_gaps(own: list[Batch], gaps: list[Batch]) -> list[Batch]:
    """The run's batches: the gaps and its own, in time order (a gap never shares a partition with its own)."""
    ours = {b.key for b in own}
    return sorted([*(g for g in gaps if g.key not in ours), *own], key=lambda b: b.key.sort_key())


def batch_to_json(batch: Batch) -> dict[str, str]:
    """A batch for XCom; a sub-daily one also carries its key's local start (with its offset), which names it."""
    out = {"batch_date": batch.batch_date.isoformat(), "from_at": batch.from_at.isoformat(),
           "to_at": batch.to_at.isoformat()}
    if batch.part is not None and batch.part.start is not None:
        out["part_start"] = batch.part.start.isoformat()
    return out


def batch_from_json(data: dict[str, str]) -> Batch:
    day = date.fromisoformat(data["batch_date"])
    part = PartitionKey(day, datetime.fromisoformat(data["part_start"])) if "part_start" in data else None
    return Batch(day, datetime.fromisoformat(data["from_at"]), datetime.fromisoformat(data["to_at"]), part)


def lookback_value(raw: object, where: str) -> int:
    """An override's value as a lookback, or ValueError naming where it came from and what fits."""
    text = str(raw).strip()
    if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) > MAX_LOOKBACK:
        raise ValueError(f"{where} is {text[:40]!r}; a lookback is a whole number of days (of intervals, for a "
                         f"sub-daily schedule) from 0 to {MAX_LOOKBACK} "
                         f"(fix: set it to such a number, or delete it to use the definition's 'lookback')")
    return int(text)
