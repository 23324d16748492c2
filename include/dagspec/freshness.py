"""Freshness: is the newest staged partition of each of a pipeline's tables recent enough?

A partition for batch_date D holds data up to D + batch_days; its age is the time since then.
A table is stale when that age exceeds the definition's `freshness.max_age_hours`, or when it has
no partition at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from dagspec.connections import Resolver, env_resolver
from dagspec.plan import plan_of
from dagspec.spec.model import Pipeline
from dagspec.store import Store
from dagspec.windows import local_midnight


@dataclass(frozen=True)
class TableFreshness:
    dag_id: str
    table: str  # schema.table in the store
    latest: date | None
    rows: int | None
    age_hours: float | None
    max_age_hours: float
    stale: bool

    @property
    def reason(self) -> str:
        if self.latest is None:
            return "no staged partition"
        verdict = "older than" if self.stale else "within"
        return f"newest partition {self.latest} is {self.age_hours:.1f} h old, {verdict} the {self.max_age_hours:g} h allowed"


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
        dates = store.batch_dates(schema, table)
        if not dates:
            results.append(TableFreshness(pipeline.dag_id, f"{schema}.{table}", None, None, None, limit, True))
            continue
        latest = dates[-1]
        data_end = local_midnight(latest + timedelta(days=pipeline.batch_days), pipeline.timezone)
        age = (now - data_end).total_seconds() / 3600
        rows = store.partition(schema, table, latest).rows
        results.append(TableFreshness(pipeline.dag_id, f"{schema}.{table}", latest, rows, age, limit, age > limit))
    return results
