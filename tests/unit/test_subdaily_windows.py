"""Sub-daily grain: every interval dagspec cuts is the data interval Airflow's own timetable gives, DST days
included, and each partition's key names one instant and round-trips through its folder name."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from dagspec.partitions import PartitionKey
from dagspec.runner import window_of_day
from dagspec.spec.model import Pipeline
from dagspec.spec.schedule import window_for


def hourly(schedule: str = "@hourly", tz: str = "America/New_York") -> Pipeline:
    return Pipeline.model_validate({
        "dag_id": "sd", "schedule": schedule, "timezone": tz, "start_date": "2025-01-01",
        "steps": [{"id": "e", "kind": "extract", "source": {"table": "t", "incremental_column": "c"},
                   "target": {"schema": "raw", "table": "t"}}]})


@pytest.mark.parametrize(("day", "count"), [(date(2025, 3, 9), 23), (date(2025, 11, 2), 25), (date(2025, 6, 1), 24)])
def test_new_york_hourly_days_have_23_24_and_25_partitions_with_distinct_keys(day, count):
    p = hourly()
    batches = p.batches_of(window_of_day(p, day))
    assert len(batches) == count
    assert len({b.key.segment for b in batches}) == count
    assert all(b.to_at - b.from_at == timedelta(hours=1) for b in batches)
    assert all(b.batch_date == day for b in batches)
    for b in batches:
        day_text, time_text = b.key.segment.split("/")
        assert PartitionKey.parse(date.fromisoformat(day_text.split("=")[1]), time_text) == b.key
        assert b.key.utc_start == b.from_at


def test_the_repeated_hour_keeps_both_occurrences_apart():
    p = hourly()
    segments = [b.key.time_segment for b in p.batches_of(window_of_day(p, date(2025, 11, 2)))][:4]
    assert segments == ["batch_time=0000-0400", "batch_time=0100-0400", "batch_time=0100-0500", "batch_time=0200-0500"]


@pytest.mark.parametrize("schedule", ["@hourly", "*/5 * * * *", "0 * * * *", "15,45 * * * *",
                                      "30 9-17 * * 1-5"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata"])
def test_every_interval_is_airflows_data_interval(schedule, tz):
    """The scheduler's own sequence of intervals over each DST day (catchup on), against dagspec's cut."""
    import pendulum
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable

    p = hourly(schedule, tz)
    table = CronDataIntervalTimetable(p.grain_cron, timezone=tz)
    for day in (date(2025, 3, 9), date(2025, 3, 10), date(2025, 3, 30), date(2025, 10, 27), date(2025, 11, 2)):
        start, end = window_for(p.schedule, day, tz)
        if start == end:  # no fire that day (a weekday-only cron on a Sunday)
            continue
        ours = p.batches_of(window_of_day(p, day))
        restriction = TimeRestriction(earliest=pendulum.instance(ours[0].from_at),
                                      latest=pendulum.instance(ours[-1].from_at), catchup=True)
        theirs, last = [], None
        while info := table.next_dagrun_info(last_automated_data_interval=last, restriction=restriction):
            last = info.data_interval
            theirs.append((last.start, last.end))
        assert [(b.from_at, b.to_at) for b in ours] == theirs, (schedule, tz, day)


def test_daily_schedules_keep_their_daily_partitions_and_batch_days_is_refused_below_a_day():
    daily = hourly("@daily")
    assert daily.grain_cron is None
    assert [b.key.segment for b in daily.batches_of(window_of_day(daily, date(2025, 3, 9)))] == ["batch_date=2025-03-09"]
    with pytest.raises(ValueError, match="batch_days is 2 but schedule '@hourly' runs more than once a day"):
        Pipeline.model_validate({**hourly().model_dump(by_alias=True, exclude_none=True), "batch_days": 2})
