"""A run's window [start, end) and the batches (partitions) it is cut into, in the pipeline's time zone.

A batch's ``batch_date`` is the local date its window starts on, and ``batch_days`` are local calendar
days: in America/New_York the day DST starts is 23 hours long and the day it ends 25, as Airflow's own
timetables cut them. Local wall times that do not exist (02:30 on the day clocks go forward) move
forward by the gap and ambiguous ones take their second occurrence, as Airflow's timetables do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dagspec.partitions import PartitionKey


@dataclass(frozen=True)
class Batch:
    """One partition's worth of a window: rows with from_at <= t < to_at land in batch_date (and, for a
    sub-daily pipeline, in the partition `part` names; dagspec.subdaily cuts those)."""

    batch_date: date
    from_at: datetime
    to_at: datetime
    part: PartitionKey | None = None

    @property
    def key(self) -> PartitionKey:
        """The partition the batch is staged and published as."""
        return self.part if self.part is not None else PartitionKey(self.batch_date)

    def params(self) -> dict[str, object]:
        return {"from_date": self.from_at, "to_date": self.to_at, "batch_date": self.batch_date}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")

    def batches(self, batch_days: int = 1, timezone: str = "UTC") -> list[Batch]:
        """Cut into chunks of `batch_days` local days from the window's start; a window shorter than that is
        one batch, dated by the local date it starts on."""
        out: list[Batch] = []
        cursor = self.start
        step = timedelta(days=batch_days)
        if timezone == "UTC":  # the common case, and exactly what dagspec always did
            while cursor < self.end:
                nxt = min(cursor + step, self.end)
                out.append(Batch(cursor.date(), cursor, nxt))
                cursor = nxt
            return out
        tz = zone(timezone)
        while cursor < self.end:
            local = cursor.astimezone(tz).replace(tzinfo=None)
            nxt = min(from_local(local + step, timezone), self.end)
            out.append(Batch(local.date(), cursor, nxt))
            cursor = nxt
        return out


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def from_local(wall: datetime, timezone: str) -> datetime:
    """The UTC instant of a naive wall-clock time in ``timezone``, chosen as Airflow's timetables choose it: a
    time in the spring gap moves forward by the gap, an ambiguous one is its second occurrence (the
    scheduler runs a job of the repeated hour after the clock went back)."""
    tz = zone(timezone)
    first, second = wall.replace(tzinfo=tz, fold=0), wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return utc(first)
    exists = second.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall
    return utc(second if exists else first)  # ambiguous: the second; in the gap, fold 0 lands after it


def local_midnight(day: date, timezone: str = "UTC") -> datetime:
    """The UTC instant ``day`` starts in ``timezone``."""
    return from_local(datetime.combine(day, time()), timezone)


def local_date(instant: datetime, timezone: str = "UTC") -> date:
    return instant.astimezone(zone(timezone)).date()


def utc(value: datetime) -> datetime:
    """A plain stdlib UTC datetime (Airflow hands out pendulum objects, whose arithmetic differs)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)
