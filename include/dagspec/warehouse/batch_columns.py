"""The columns dagspec adds to every published row, and the key a re-run replaces by.

A daily batch adds `batch_date DATE` and is replaced by it, as always. A sub-daily batch adds `batch_start
TIMESTAMP` too (the interval's start in UTC, without a zone: every warehouse has that type and compares it
exactly) and is replaced by that, so re-running one hour leaves the rest of its day's rows alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from dagspec.partitions import Key, PartitionKey, as_key


@dataclass(frozen=True)
class BatchColumns:
    key: PartitionKey

    @classmethod
    def of(cls, batch: Key) -> BatchColumns:
        return cls(as_key(batch))

    @property
    def names(self) -> list[str]:
        return ["batch_date", "batch_start"] if self.key.is_sub_daily else ["batch_date"]

    @property
    def replace_by(self) -> str:
        return "batch_start" if self.key.is_sub_daily else "batch_date"

    def params(self) -> dict[str, date | datetime]:
        start = self.key.utc_start
        return {"batch_date": self.key.day, **({"batch_start": start.replace(tzinfo=None)} if start else {})}

    def typed(self, date_type: str, timestamp_type: str) -> list[tuple[str, str]]:
        return [("batch_date", date_type), *([("batch_start", timestamp_type)] if self.key.is_sub_daily else [])]

    def select(self, mark: Callable[[str], str]) -> str:
        """The added columns as bound casts; `mark` writes a parameter in the driver's style."""
        out = [f"CAST({mark('batch_date')} AS DATE) AS batch_date"]
        if self.key.is_sub_daily:
            out.append(f"CAST({mark('batch_start')} AS TIMESTAMP) AS batch_start")
        return ", ".join(out)

    def where(self, mark: Callable[[str], str]) -> str:
        return f"{self.replace_by} = {mark(self.replace_by)}"

    def literal_where(self) -> str:
        """The same test with typed literals made from the key (never user text), for a view's definition."""
        start = self.key.utc_start
        if start is None:
            return f"batch_date = DATE '{self.key.day.isoformat()}'"
        return f"batch_start = TIMESTAMP '{start.replace(tzinfo=None).isoformat(sep=' ')}'"

    def refuse_clash(self, produced: list[tuple[str, str]]) -> None:
        clash = [n for n, _ in produced if n in self.names]
        if clash:
            raise ValueError(f"the query returns a column named {clash[0]}; dagspec adds it: rename or drop yours")


def dollar(name: str) -> str:
    return f"${name}"


def pyformat(name: str) -> str:
    return f"%({name})s"


def daily_only(batch: Key, warehouse: str) -> date:
    """The date of a daily batch; a sub-daily one is refused where a warehouse only replaces whole days (it
    would delete the rest of the day's rows)."""
    key = as_key(batch)
    if key.is_sub_daily:
        raise ValueError(f"{warehouse} publishes whole days only; batch {key.label} is one interval of a sub-daily "
                         "pipeline (fix: publish it to DuckDB or PostgreSQL, or schedule the pipeline daily)")
    return key.day
