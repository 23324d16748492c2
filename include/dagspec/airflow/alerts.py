"""Airflow task callbacks that send a definition's alerts (failure, retry) through dagspec.alerts.

At parse time only a small callable object is attached to each task; the definition is re-read
(cached) and the alert built when a task actually fails, in the task's own process.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.spec.model import Pipeline

if TYPE_CHECKING:
    from dagspec.alerts import AlertEvent
    from dagspec.connections import Resolver

log = logging.getLogger("dagspec.alerts")


class AlertCallback:
    """on_failure_callback / on_retry_callback for one definition (a plain object: cheap to build, picklable)."""

    def __init__(self, definition: str, kind: str) -> None:
        self.definition = definition
        self.kind = kind

    def __repr__(self) -> str:  # shown in task details; the definition's file name is enough
        return f"AlertCallback({Path(self.definition).name}, {self.kind})"

    def __call__(self, context: Any) -> None:
        from dagspec.airflow.connections import airflow_resolver
        from dagspec.alerts import send_alerts
        from dagspec.spec.discovery import load_cached

        pipeline = load_cached(self.definition)
        if not pipeline.alerts:
            return
        event = event_from_context(self.kind, pipeline, context, airflow_resolver)
        delivered = send_alerts(pipeline.alerts, event, airflow_resolver)
        log.info("dagspec %s alert for %s.%s: %s", self.kind, event.dag_id, event.task_id,
                 ", ".join(f"{k} {'sent' if ok else 'NOT sent'}" for k, ok in delivered.items()) or "no channel")


def alert_callbacks(pipeline: Pipeline, definition: str) -> dict[str, AlertCallback]:
    """Operator kwargs for the events the definition wants alerts on (none without `alerts`)."""
    if not pipeline.alerts or not (pipeline.alerts.email or pipeline.alerts.webhook_conn_id):
        return {}
    # A monitor breach is not a task event: the monitor stage sends that alert itself, with its numbers.
    return {f"on_{kind}_callback": AlertCallback(definition, kind) for kind in pipeline.alerts.on
            if kind in ("failure", "retry")}


def event_from_context(kind: str, pipeline: Pipeline, context: Any, resolver: Resolver) -> AlertEvent:
    from dagspec.alerts import AlertEvent, pipeline_secrets, summarize_error

    ti = context["ti"]
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    when = f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}" if start and end else str(context.get("logical_date") or "")
    try:
        log_url = ti.log_url
    except Exception:  # the URL is a convenience; a missing [api] base_url must not stop the alert
        log_url = ""
    return AlertEvent(
        kind=kind,
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        date=when,
        try_number=int(ti.try_number or 1),
        max_tries=int(getattr(ti, "max_tries", None) or pipeline.retries),
        error=summarize_error(context.get("exception"), pipeline_secrets(pipeline, resolver)),
        log_url=log_url,
    )
