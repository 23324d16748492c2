"""Schedules: Airflow presets or five-field cron, checked without importing Airflow."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from croniter import croniter

from dagspec.windows import from_local

PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def cron_of(schedule: str) -> str:
    return PRESETS.get(schedule, schedule)


def check_cron(schedule: str) -> str:
    """A preset or a five-field cron expression, any frequency (a freshness check may run hourly), else ValueError."""
    expr = cron_of(schedule)
    if schedule.startswith("@") and schedule not in PRESETS:
        raise ValueError(f"unknown preset {schedule!r}; use one of {', '.join(PRESETS)} or a cron expression")
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(
            f"{schedule!r} is not a valid cron expression (five fields: minute hour day-of-month month day-of-week)"
        )
    return schedule


def check_schedule(schedule: str) -> str:
    """Return the schedule unchanged, or raise ValueError saying what a valid one looks like."""
    expr = cron_of(check_cron(schedule))
    # More than one minute or hour value means more than one run on a day it fires. Read from the
    # expanded fields: stepping croniter through fire times costs up to 0.2 s for a monthly cron.
    (minutes, hours, *_), _nth = croniter.expand(expr)
    if len(minutes) > 1 or len(hours) > 1 or "*" in minutes or "*" in hours:
        raise ValueError(
            f"{schedule!r} runs more than once a day; batch partitions are daily (batch_date=YYYY-MM-DD), "
            "so a pipeline runs at most daily"
        )
    return schedule


def window_for(schedule: str | None, day: date, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """The data interval that starts on ``day`` (a local date in ``timezone``), in UTC, as Airflow's
    CronDataIntervalTimetable cuts it: cron read on the local wall clock, as Airflow's does.

    Unscheduled pipelines get one local calendar day, the unit of a batch partition.
    """
    start = datetime.combine(day, time())
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
