"""A partition's key: the local day it belongs to and, for a sub-daily pipeline, the instant it starts.

Daily partitions live at `batch_date=YYYY-MM-DD/` exactly as they always did. A pipeline whose schedule fires
more than once a day stages one partition per schedule interval one level down, at
`batch_date=YYYY-MM-DD/batch_time=HHMM/`: HHMM is the local wall time the interval starts at. Where the
local offset from UTC is not zero the offset follows (`batch_time=0100-0400`), because the hour a zone
repeats when its clocks go back has two intervals with the same wall time; with the offset every key names
exactly one instant, read from the path alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

SEGMENT = re.compile(r"batch_time=(\d{2})(\d{2})(?:([+-])(\d{2})(\d{2}))?$")


@dataclass(frozen=True)
class PartitionKey:
    """`day`: the local date. `start`: a sub-daily partition's local start with its fixed UTC offset (so the
    key compares and hashes by instant); None for a daily partition."""

    day: date
    start: datetime | None = None

    @classmethod
    def sub_daily(cls, from_at: datetime, tz_name: str = "UTC") -> PartitionKey:
        local = from_at.astimezone(ZoneInfo(tz_name))
        fixed = local.astimezone(timezone(local.utcoffset() or timedelta()))
        return cls(fixed.date(), fixed)

    @property
    def is_sub_daily(self) -> bool:
        return self.start is not None

    @property
    def utc_start(self) -> datetime | None:
        return None if self.start is None else self.start.astimezone(UTC)

    @property
    def time_segment(self) -> str:
        """`batch_time=HHMM[+-HHMM]`, or "" for a daily key."""
        if self.start is None:
            return ""
        offset = self.start.utcoffset() or timedelta()
        text = f"batch_time={self.start:%H%M}"
        if offset:
            minutes = int(offset.total_seconds() // 60)
            sign = "+" if minutes >= 0 else "-"
            text += f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
        return text

    @property
    def segment(self) -> str:
        """The path below the table's folder."""
        day = f"batch_date={self.day.isoformat()}"
        return f"{day}/{self.time_segment}" if self.start is not None else day

    @property
    def label(self) -> str:
        """For messages and result keys: `2025-01-01` or `2025-01-01T05:00-0400`."""
        return self.day.isoformat() if self.start is None else self.start.strftime("%Y-%m-%dT%H:%M%z")

    @property
    def display(self) -> str:
        """For people (the Definitions page): `2025-01-01`, `2025-03-01T05:00Z` in UTC, else the local wall time
        with its offset, `2025-03-09T01:00-0500`."""
        if self.start is None:
            return self.day.isoformat()
        return self.start.strftime("%Y-%m-%dT%H:%M") + ("Z" if not self.start.utcoffset() else self.start.strftime("%z"))

    def __str__(self) -> str:
        return self.label

    def sort_key(self) -> tuple[date, datetime]:
        return self.day, self.utc_start or datetime.min.replace(tzinfo=UTC)

    @classmethod
    def parse(cls, day: date, time_segment: str) -> PartitionKey | None:
        """The key of a `batch_time=...` folder under `batch_date=day`, or None when the name is not one."""
        m = SEGMENT.match(time_segment)
        if not m:
            return None
        hh, mm, sign, oh, om = m.groups()
        minutes = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1) if sign else 0
        if int(hh) > 23 or int(mm) > 59 or abs(minutes) > 18 * 60:
            return None
        return cls(day, datetime(day.year, day.month, day.day, int(hh), int(mm),
                                 tzinfo=timezone(timedelta(minutes=minutes))))


Key = date | PartitionKey  # what the store and the warehouses take: a bare date is a daily partition


def as_key(value: Key) -> PartitionKey:
    return value if isinstance(value, PartitionKey) else PartitionKey(value)
