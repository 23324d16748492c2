"""Schedules: Airflow presets or five-field cron, checked without importing Airflow."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from croniter import croniter

from dagspec.subdaily import PRESETS, cron_of, day_window, sub_daily_cron
from dagspec.windows import from_local

__all__ = ["PRESETS", "check_schedule", "check_timezone", "cron_of", "window_for"]


def check_schedule(schedule: str) -> str:
    """Return the schedule unchanged, or raise ValueError saying what a valid one looks like."""
    expr = cron_of(schedule)
    if schedule.startswith("@") and schedule not in PRESETS:
        raise ValueError(f"unknown preset {schedule!r}; use one of {', '.join(PRESETS)} or a cron expression")
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(
            f"{schedule!r} is not a valid cron expression (five fields: minute hour day-of-month month day-of-week)"
        )
    return schedule


def window_for(schedule: str | None, day: date, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """The data interval that starts on ``day`` (a local date in ``timezone``), in UTC, as Airflow's
    CronDataIntervalTimetable cuts it: cron read on the local wall clock, as Airflow's does.

    Unscheduled pipelines get one local calendar day, the unit of a batch partition. A sub-daily schedule's
    day is every interval starting that local day (dagspec.subdaily.day_window), cut into one batch each.
    """
    start = datetime.combine(day, time())
    expr = sub_daily_cron(schedule)
    if expr is not None:
        return day_window(expr, day, timezone)
    if not schedule:
        return from_local(start, timezone), from_local(start + timedelta(days=1), timezone)
    it = croniter(cron_of(schedule), start - timedelta(seconds=1))
    first = it.get_next(datetime)
    return from_local(first, timezone), from_local(it.get_next(datetime), timezone)


def check_timezone(name: str) -> str:
    """An IANA time zone name, or a ValueError naming the closest ones."""
    import difflib
    import zoneinfo

    known = zoneinfo.available_timezones()
    if name in known:
        return name
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "for example 'America/New_York'"
    raise ValueError(f"{name!r} is not an IANA time zone name ({hint})")
