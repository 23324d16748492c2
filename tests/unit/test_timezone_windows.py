"""Time-zoned pipelines: windows cut on the local wall clock, as Airflow's own timetables cut them.

Every window is compared with what Airflow's CronDataIntervalTimetable says for the same cron and zone,
on both 2025 DST transitions of America/New_York and around them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from dagspec.spec import DefinitionError
from dagspec.spec.load import parse_definition
from dagspec.spec.schedule import window_for
from dagspec.sql import render_window
from dagspec.windows import Window, local_midnight

NY = "America/New_York"
ROOT = Path(__file__).resolve().parents[2]


def z(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_dst_days_are_23_and_25_hours_and_batch_date_is_the_local_date():
    spring = window_for("@daily", date(2025, 3, 9), NY)
    assert spring == (z("2025-03-09 05:00"), z("2025-03-10 04:00"))
    fall = window_for("@daily", date(2025, 11, 2), NY)
    assert fall == (z("2025-11-02 04:00"), z("2025-11-03 05:00"))
    assert [w[1] - w[0] for w in (spring, fall)] == [timedelta(hours=23), timedelta(hours=25)]

    three = Window(local_midnight(date(2025, 3, 8), NY), local_midnight(date(2025, 3, 11), NY)).batches(1, NY)
    assert [(b.batch_date, b.from_at, b.to_at) for b in three] == [
        (date(2025, 3, 8), z("2025-03-08 05:00"), z("2025-03-09 05:00")),
        (date(2025, 3, 9), z("2025-03-09 05:00"), z("2025-03-10 04:00")),
        (date(2025, 3, 10), z("2025-03-10 04:00"), z("2025-03-11 04:00")),
    ]
    week = Window(local_midnight(date(2025, 10, 27), NY), local_midnight(date(2025, 11, 10), NY)).batches(7, NY)
    assert [(b.batch_date, b.to_at - b.from_at) for b in week] == [
        (date(2025, 10, 27), timedelta(days=7, hours=1)), (date(2025, 11, 3), timedelta(days=7))]


def test_utc_pipelines_cut_exactly_as_before():
    window = Window(z("2025-03-01 00:00"), z("2025-03-04 00:00"))
    assert window.batches(2) == window.batches(2, "UTC")
    assert [(b.batch_date, b.from_at) for b in window.batches(2)] == [
        (date(2025, 3, 1), z("2025-03-01 00:00")), (date(2025, 3, 3), z("2025-03-03 00:00"))]
    assert window_for("30 1 * * *", date(2025, 3, 1)) == (z("2025-03-01 01:30"), z("2025-03-02 01:30"))


def test_a_daily_0230_job_on_the_day_0230_does_not_exist():
    before = window_for("30 2 * * *", date(2025, 3, 8), NY)
    gap_day = window_for("30 2 * * *", date(2025, 3, 9), NY)
    # 02:30 EST on the 8th, then 03:30 EDT on the 9th (the wall clock jumps 02:00 -> 03:00), then 02:30 EDT.
    assert before == (z("2025-03-08 07:30"), z("2025-03-09 07:30"))
    assert gap_day == (z("2025-03-09 07:30"), z("2025-03-10 06:30"))
    batches = Window(*gap_day).batches(1, NY)
    assert [b.batch_date for b in batches] == [date(2025, 3, 9)]


CRONS = ["@daily", "30 2 * * *", "30 1 * * *", "0 6 * * 1", "15 2 1 * *", "0 23 * * *"]
ZONES = [NY, "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]


@pytest.mark.parametrize("zone", ZONES)
def test_every_window_is_the_data_interval_airflow_schedules(zone):
    """The scheduler's own sequence of data intervals (next_dagrun_info, catchup on), each compared with the
    window dagspec computes for the local date it starts on (what `dagspec run --date` and backfills use)."""
    import pendulum
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.interval import CronDataIntervalTimetable

    from dagspec.windows import local_date

    for first, count in ((date(2025, 3, 1), 45), (date(2025, 10, 20), 25)):
        earliest = pendulum.instance(local_midnight(first, zone))
        latest = pendulum.instance(local_midnight(first + timedelta(days=count), zone))
        for cron in CRONS:
            timetable = CronDataIntervalTimetable(cron, timezone=zone)
            restriction = TimeRestriction(earliest=earliest, latest=latest, catchup=True)
            last, seen = None, 0
            while (info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)):
                interval = info.data_interval
                day = local_date(interval.start, zone)
                assert window_for(cron, day, zone) == (interval.start, interval.end), (cron, zone, day)
                last, seen = interval, seen + 1
            assert seen >= 1, (cron, zone, first)


def definition(**changes) -> bytes:
    data = json.loads((ROOT / "tests/definitions/good/minimal.json").read_text())
    data.update(changes)
    return json.dumps(data).encode()


def test_a_time_zone_must_be_an_iana_name():
    assert parse_definition(definition(timezone=NY), "tz.json").timezone == NY
    assert parse_definition(definition(), "tz.json").timezone == "UTC"
    for wrong, said in (("America/New_Yrok", "did you mean 'America/New_York'"),
                        ("../../../etc/passwd", "is not an IANA time zone name"), ("EST5EDT\n", "not an IANA")):
        with pytest.raises(DefinitionError) as info:
            parse_definition(definition(timezone=wrong), "tz.json")
        (problem,) = info.value.problems
        assert problem.path == "$.timezone" and said in problem.message, problem


def test_ds_is_the_batch_local_date():
    tokyo = "Asia/Tokyo"
    (batch,) = Window(local_midnight(date(2025, 6, 1), tokyo), local_midnight(date(2025, 6, 2), tokyo)).batches(1, tokyo)
    assert batch.from_at == z("2025-05-31 15:00")
    rendered = render_window("{{ ds }} {{ ds_nodash }} {{ batch_date }}", batch.from_at, batch.to_at, {},
                             batch_date=batch.batch_date)
    assert rendered == "2025-06-01 20250601 2025-06-01"
