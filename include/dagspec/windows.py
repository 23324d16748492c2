"""A run's window [start, end) and the daily-aligned batches (partitions) it is cut into."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta


@dataclass(frozen=True)
class Batch:
    """One partition's worth of a window: rows with from_at <= t < to_at land in batch_date."""

    batch_date: date
    from_at: datetime
    to_at: datetime

    def params(self) -> dict[str, object]:
        return {"from_date": self.from_at, "to_date": self.to_at, "batch_date": self.batch_date}


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")

    def batches(self, batch_days: int = 1) -> list[Batch]:
        """Cut into chunks of `batch_days` days; a window shorter than a day is one batch."""
        out: list[Batch] = []
        cursor = self.start
        step = timedelta(days=batch_days)
        while cursor < self.end:
            nxt = min(cursor + step, self.end)
            out.append(Batch(cursor.date(), cursor, nxt))
            cursor = nxt
        return out


def utc(value: datetime) -> datetime:
    """A plain stdlib UTC datetime (Airflow hands out pendulum objects, whose arithmetic differs)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)
