"""The scheduled freshness check: `check_freshness`, then a `stale` alert only when what is stale changed.

The tables last alerted as stale, each with its newest partition, are kept in the store's records
(`_runs/<dag_id>/freshness.json`). A run alerts when a table turns stale or is stale with another newest
partition than last time (a new partition arrived and is already too old); a table that stays stale on the
same partition is not alerted again. A table that was alerted and is fresh now gets one `recovered` note.
The record moves on only once every channel took the alert, so an alert that could not be sent is tried
again on the next run rather than lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagspec.alerts import AlertEvent
from dagspec.alerts_runs import deliver
from dagspec.connections import Resolver, env_resolver
from dagspec.freshness import TableFreshness, check_freshness
from dagspec.spec.model import Pipeline
from dagspec.spec.pipeline import FRESHNESS_SUFFIX
from dagspec.store import Store


@dataclass
class FreshnessRun:
    verdicts: list[TableFreshness]
    alerted: list[str] = field(default_factory=list)  # tables that made this run send a stale alert
    recovered: list[str] = field(default_factory=list)
    delivered: dict[str, dict[str, bool]] = field(default_factory=dict)  # "stale"/"recovered" -> channel -> sent

    @property
    def stale(self) -> list[TableFreshness]:
        return [v for v in self.verdicts if v.stale]


def freshness_dag_id(pipeline: Pipeline) -> str:
    return f"{pipeline.dag_id}{FRESHNESS_SUFFIX}"


def run_freshness_check(pipeline: Pipeline, *, now: datetime | None = None, resolver: Resolver = env_resolver,
                        link: str = "") -> FreshnessRun:
    now = now or datetime.now(UTC)
    run = FreshnessRun(check_freshness(pipeline, now=now, resolver=resolver))
    store = Store.from_connection(resolver(pipeline.store.conn_id))
    before = store.freshness_state(pipeline.dag_id)
    stale_now = {v.table: v.latest.label if v.latest else None for v in run.stale}
    run.alerted = [t for t, latest in stale_now.items() if t not in before or before[t] != latest]
    run.recovered = [t for t in before if t not in stale_now]
    when = f"{now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    by_table = {v.table: v for v in run.verdicts}
    if run.alerted:
        lines = [f"{v.table}: {v.reason}" + ("" if v.table in run.alerted else " (alerted before)") for v in run.stale]
        run.delivered["stale"] = deliver(pipeline, _event("stale", pipeline, when, lines, link), resolver)
    if run.recovered:
        lines = [f"{t}: {by_table[t].reason}" if t in by_table else f"{t}: no longer checked" for t in run.recovered]
        run.delivered["recovered"] = deliver(pipeline, _event("recovered", pipeline, when, lines, link), resolver)
    if all(all(sent.values()) for sent in run.delivered.values()) and stale_now != before:
        store.record_freshness(pipeline.dag_id, stale_now)
    return run


def _event(kind: str, pipeline: Pipeline, when: str, lines: list[str], link: str) -> AlertEvent:
    return AlertEvent(kind=kind, dag_id=pipeline.dag_id, task_id="", run_id=freshness_dag_id(pipeline), date=when,
                      try_number=1, max_tries=0, error="", log_url=link, details=tuple(lines))
