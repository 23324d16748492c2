"""Airflow callbacks that send a definition's alerts through dagspec.alerts: each task's failure and retry, and
the DAG's on_success_callback (one alert per successful run).

At parse time only a small callable object is attached; the definition is re-read (cached) and the alert
built when the event happens: a task's in its own process, a run's success where Airflow runs DAG callbacks.
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
        from dagspec.errors import AlreadyAlerted
        from dagspec.spec.discovery import load_cached

        pipeline = load_cached(self.definition)
        if not pipeline.alerts:
            return
        if self.kind == "failure" and isinstance(context.get("exception"), AlreadyAlerted):
            log.info("dagspec: no failure alert for %s: the step sent its own, with its numbers", context["ti"].task_id)
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


class RunSuccessCallback:
    """The DAG's on_success_callback: one alert per successful run, with its dates and what each publish step
    recorded in the store for them (Airflow runs DAG callbacks outside the tasks, in the dag-processor, so the
    numbers come from the store, not from the tasks' memory)."""

    def __init__(self, definition: str) -> None:
        self.definition = definition

    def __repr__(self) -> str:
        return f"RunSuccessCallback({Path(self.definition).name})"

    def __call__(self, context: Any) -> None:
        from dagspec.airflow.connections import airflow_resolver
        from dagspec.alerts_runs import deliver, success_event, wants
        from dagspec.spec.discovery import load_cached

        pipeline = load_cached(self.definition)
        if not wants(pipeline, "success"):
            return
        try:
            days, published = run_published(pipeline, context, airflow_resolver)
        except Exception as exc:  # the alert still goes, without the numbers it could not read
            log.warning("dagspec success alert for %s: could not read what the run published: %s", pipeline.dag_id,
                        type(exc).__name__)
            days, published = [], {}
        run_id = str(context.get("run_id") or "")
        deliver(pipeline, success_event(pipeline, run_id, days, published, run_url(pipeline.dag_id, run_id)),
                airflow_resolver)


def run_published(pipeline: Pipeline, context: Any, resolver: Resolver) -> tuple[list[str], dict[str, dict]]:
    """The run's batches (labels), and step id -> batch label -> what that publish step recorded for it."""
    from dagspec.airflow.assets import run_window
    from dagspec.store import Store
    from dagspec.windows import Window, utc

    start, end = run_window(context)
    keys = [b.key for b in pipeline.batches_of(Window(utc(start), utc(end)))]
    store = Store.from_connection(resolver(pipeline.store.conn_id))
    published: dict[str, dict] = {}
    for step in pipeline.steps:
        if step.kind != "publish":
            continue
        for key in keys:
            done = store.published(pipeline.dag_id, step.id, key)
            if done is not None:
                published.setdefault(step.id, {})[key.label] = done
    return [k.label for k in keys], published


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the UI (absolute when Airflow knows its own address)."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id)}" if run_id else ""
