"""Freshness: is the newest staged partition of each of a pipeline's tables recent enough?

A daily partition for batch_date D holds data up to D + batch_days; a sub-daily one up to its
interval's end (the schedule's next fire after its start), so an hourly table is judged by the hour
it last staged, not by the day that hour belongs to. Its age is the time since then.
A table is stale when that age exceeds the definition's `freshness.max_age_hours`, or when it has
no partition at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dagspec.connections import Resolver, env_resolver
from dagspec.partitions import PartitionKey
from dagspec.plan import plan_of
from dagspec.spec.model import Pipeline
from dagspec.store import Store
from dagspec.subdaily import next_fire
from dagspec.windows import local_midnight


@dataclass(frozen=True)
class TableFreshness:
    dag_id: str
    table: str  # schema.table in the store
    latest: PartitionKey | None  # the newest partition: a day, or an interval of a sub-daily pipeline
    rows: int | None
    age_hours: float | None
    max_age_hours: float
    stale: bool

    @property
    def reason(self) -> str:
        if self.latest is None:
            return "no staged partition"
        verdict = "older than" if self.stale else "within"
        return (f"newest partition {self.latest.display} is {self.age_hours:.1f} h old, {verdict} the "
                f"{self.max_age_hours:g} h allowed")


def check_freshness(
    pipeline: Pipeline,
    *,
    now: datetime | None = None,
    max_age_hours: float | None = None,
    resolver: Resolver = env_resolver,
) -> list[TableFreshness]:
    """One verdict per store table; `max_age_hours` overrides the definition (required if it has none)."""
    limit = max_age_hours if max_age_hours is not None else (pipeline.freshness and pipeline.freshness.max_age_hours)
    if not limit:
        raise ValueError(f"{pipeline.dag_id} has no 'freshness' in its definition; give a maximum age")
    now = now or datetime.now(UTC)
    store = Store.from_connection(resolver(pipeline.store.conn_id))
    results = []
    for schema, table in plan_of(pipeline).store_tables():
        keys = store.partitions(schema, table)
        if not keys:
            results.append(TableFreshness(pipeline.dag_id, f"{schema}.{table}", None, None, None, limit, True))
            continue
        latest = keys[-1]
        data_end = partition_end(pipeline, latest)
        age = (now - data_end).total_seconds() / 3600
        rows = store.partition(schema, table, latest).rows
        results.append(TableFreshness(pipeline.dag_id, f"{schema}.{table}", latest, rows, age, limit, age > limit))
    return results


def partition_end(pipeline: Pipeline, key: PartitionKey) -> datetime:
    """The instant a partition's data runs up to: its interval's end at a sub-daily grain, else its last day's end."""
    expr = pipeline.grain_cron
    if key.utc_start is not None and expr is not None:
        return next_fire(expr, key.utc_start, pipeline.timezone)
    return local_midnight(key.day + timedelta(days=pipeline.batch_days), pipeline.timezone)
