"""The alerts about a run rather than a task's try: a successful run (what it published), a validate step's
failed warn-severity checks, and stale or fresh-again tables. Built here, delivered by dagspec.alerts.

Every value that comes from a definition or the data (a check's column, an observed value, a table name) is
made one line by dagspec.alerts before it reaches a header or a line of the message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from dagspec.alerts import AlertEvent, pipeline_secrets, send_alerts
from dagspec.connections import Resolver
from dagspec.secrets import scrub_known
from dagspec.spec.model import Pipeline, PublishStep

log = logging.getLogger("dagspec.alerts")

MAX_OBSERVED_CHARS = 120


def wants(pipeline: Pipeline, kind: str) -> bool:
    return pipeline.alerts is not None and pipeline.alerts.sends(kind)


def target_names(step: PublishStep) -> dict[str, str]:
    """The publish stage's result keys (table, export, ...) -> what a person reads as the place."""
    names = {}
    if step.table is not None:
        names["table"] = f"table {step.table.qualified}"
    if step.export is not None:
        dest = step.export.target or step.table
        names["export"] = f"{step.export.format} export {dest.qualified if dest else ''}".rstrip()
    if step.bigquery is not None:
        names["bigquery"] = f"BigQuery {step.bigquery.dataset}.{step.bigquery.table}"
    if step.sheet is not None:
        names["sheet"] = f"sheet {step.sheet.worksheet}"
    if step.email is not None:
        names["email"] = f"e-mail to {len(step.email.to)} address(es)"
    return names


def published_lines(pipeline: Pipeline, published: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per publish step and batch: `publish_revenue 2025-03-01: table analytics.daily_revenue 12 rows`.
    `published`: step id -> the publish stage's result (batch_date -> rows, or target -> rows when it has more
    than one target)."""
    lines = []
    for step in pipeline.steps:
        if not isinstance(step, PublishStep) or step.id not in published:
            continue
        names = target_names(step)
        for day, done in sorted(published[step.id].items()):
            done = done if isinstance(done, Mapping) else {next(iter(names), "rows"): done}
            parts = [f"{names.get(key, key)} {rows:,} rows" if isinstance(rows, int) else f"{names.get(key, key)}"
                     for key, rows in done.items()]
            lines.append(f"{step.id} {day}: {', '.join(parts)}")
    return lines


def success_event(pipeline: Pipeline, run_id: str, dates: Iterable[str], published: Mapping[str, Mapping[str, Any]],
                  link: str) -> AlertEvent:
    dates = sorted(dates)
    when = dates[0] if len(dates) == 1 else f"{dates[0]} .. {dates[-1]} ({len(dates)} dates)" if dates else ""
    return AlertEvent(kind="success", dag_id=pipeline.dag_id, task_id="", run_id=run_id, date=when, try_number=1,
                      max_tries=0, error="", log_url=link,
                      details=tuple(published_lines(pipeline, published)) or ("no publish step ran",))


def observed(result: Mapping[str, Any]) -> str:
    """What a failed check saw, short: the observed value, else the unexpected count and share."""
    res = result.get("result") or {}
    if (result.get("exception_info") or {}).get("raised_exception"):
        return "error: " + str(result["exception_info"].get("exception_message"))[:MAX_OBSERVED_CHARS]
    if "observed_value" in res:
        return "observed " + json.dumps(res["observed_value"], default=str)[:MAX_OBSERVED_CHARS]
    if res.get("unexpected_count") is not None:
        share = res.get("unexpected_percent")
        return f"{res['unexpected_count']:,} unexpected" + (f" ({share:.2f}%)" if share is not None else "")
    return "no observed value"


def warn_event(pipeline: Pipeline, step_id: str, run_id: str, dates: list[str], lines: list[str], link: str
               ) -> AlertEvent:
    when = dates[0] if len(dates) == 1 else f"{dates[0]} .. {dates[-1]}"
    return AlertEvent(kind="warn", dag_id=pipeline.dag_id, task_id=step_id, run_id=run_id, date=when, try_number=1,
                      max_tries=0, error="", log_url=link, details=tuple(lines))


def deliver(pipeline: Pipeline, event: AlertEvent, resolver: Resolver) -> dict[str, bool]:
    """Send through the definition's channels, the details scrubbed of its connections' secrets; logged, never
    raised (an alert that cannot be sent must not fail the run it reports)."""
    if not wants(pipeline, "stale" if event.kind == "recovered" else event.kind):
        return {}
    try:
        secrets = pipeline_secrets(pipeline, resolver)
        clean = replace(event, details=tuple(scrub_known(d, secrets) for d in event.details),
                        log_url=scrub_known(event.log_url, secrets))
        delivered = send_alerts(pipeline.alerts, clean, resolver, secrets)
    except Exception as exc:  # a resolver or a message that cannot be built: the run stands
        log.warning("dagspec %s alert for %s not sent: %s", event.kind, event.dag_id, type(exc).__name__)
        return {}
    log.info("dagspec %s alert for %s: %s", event.kind, event.dag_id,
             ", ".join(f"{k} {'sent' if ok else 'NOT sent'}" for k, ok in delivered.items()) or "no channel")
    return delivered
