"""Which earlier batches a run's lookback looks at: cut as their own scheduled runs cut them, in date order."""

from __future__ import annotations

from datetime import UTC, date, datetime

from dagspec.lookback import batch_from_json, batch_to_json, candidate_batches, with_gaps
from dagspec.runner import window_of_day
from dagspec.spec.model import Pipeline


def pipeline(**changes) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "p", "start_date": "2025-01-01", "steps": [
        {"id": "e", "kind": "extract", "source": {"table": "t"}, "target": {"schema": "raw", "table": "t"}}],
        **changes})


def candidates(p: Pipeline, day: date, lookback: int) -> list:
    return candidate_batches(p, window_of_day(p, day), day, lookback)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_lookback_is_the_days_before_and_never_before_start_date():
    assert [b.batch_date for b in candidates(pipeline(), date(2025, 3, 10), 3)] == \
        [date(2025, 3, 7), date(2025, 3, 8), date(2025, 3, 9)]
    assert [b.batch_date for b in candidates(pipeline(start_date="2025-03-09"), date(2025, 3, 10), 3)] == \
        [date(2025, 3, 9)]
    assert candidates(pipeline(), date(2025, 3, 10), 0) == []
    assert candidates(pipeline(start_date="2025-03-10"), date(2025, 3, 10), 5) == []


def test_batches_are_cut_as_their_own_runs_cut_them():
    [b] = candidates(pipeline(schedule="0 3 * * *"), date(2025, 3, 10), 1)
    assert (b.batch_date, b.from_at, b.to_at) == (date(2025, 3, 9), at(2025, 3, 9, 3), at(2025, 3, 10, 3))
    # New York: the day clocks go forward is 23 hours, dated by its local date.
    got = candidates(pipeline(timezone="America/New_York"), date(2025, 3, 10), 2)
    assert [(b.batch_date, b.from_at, b.to_at) for b in got] == [
        (date(2025, 3, 8), at(2025, 3, 8, 5), at(2025, 3, 9, 5)),
        (date(2025, 3, 9), at(2025, 3, 9, 5), at(2025, 3, 10, 4))]
    # Weekly runs of daily batches: the two weeks before, day by day, none of the run's own week.
    weekly = candidates(pipeline(schedule="@weekly"), date(2025, 3, 16), 14)
    assert [b.batch_date for b in weekly] == [date(2025, 3, d) for d in range(2, 16)]
    assert all(b.to_at <= window_of_day(pipeline(schedule="@weekly"), date(2025, 3, 16)).start for b in weekly)


def test_the_run_processes_gaps_and_its_own_batches_in_date_order_once_each():
    p = pipeline()
    own = window_of_day(p, date(2025, 3, 10)).batches()
    earlier = candidates(p, date(2025, 3, 10), 4)
    gaps = [earlier[2], earlier[0], own[0]]
    assert [b.batch_date for b in with_gaps(own, gaps)] == [date(2025, 3, 6), date(2025, 3, 8), date(2025, 3, 10)]
    assert [batch_from_json(batch_to_json(b)) for b in earlier] == earlier
