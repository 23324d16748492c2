"""`<dag_id>__freshness`: a small DAG of its own for a definition whose `freshness` has a `schedule`.

A DAG rather than a task of the pipeline's DAG: staleness is what happens when the pipeline's own runs stop
(paused, failing, the scheduler behind), so the check must not wait on them, and it runs on its own clock
(hourly, say, for a daily pipeline). Its one task runs dagspec.freshness_alerts and succeeds even when tables
are stale: the `stale` alert is the signal, and a failed task every hour would add a failure alert and retries
to it. The task's result and log list every table's verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from dagspec.spec.model import Pipeline
from dagspec.spec.pipeline import FRESHNESS_SUFFIX
from dagspec.spec.schedule import cron_of
from dagspec.windows import local_midnight, zone

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import DAG


class DagspecFreshnessOperator(BaseOperator):
    """Checks the definition's tables and alerts on a change of state (dagspec.freshness_alerts)."""

    ui_color = "#fdf3e1"

    def __init__(self, *, definition: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.definition = definition

    def execute(self, context: Any) -> dict[str, Any]:
        import logging

        from dagspec.airflow.build import reports_url
        from dagspec.airflow.connections import airflow_resolver
        from dagspec.airflow.ui_route import REPORTS_ROUTE, URL_PREFIX
        from dagspec.freshness_alerts import run_freshness_check
        from dagspec.spec.discovery import load_cached

        log = logging.getLogger("dagspec")
        pipeline = load_cached(self.definition)
        page = reports_url().removesuffix(REPORTS_ROUTE) + URL_PREFIX + "/"  # the Definitions page
        run = run_freshness_check(pipeline, resolver=airflow_resolver, link=page)
        for v in run.verdicts:
            log.log(logging.WARNING if v.stale else logging.INFO, "%s %s: %s", "STALE" if v.stale else "fresh",
                    v.table, v.reason)
        log.info("freshness of %s: %d stale, alerted %s, recovered %s", pipeline.dag_id, len(run.stale),
                 run.alerted or "none (no change)", run.recovered or "none")
        return {"stale": [v.table for v in run.stale], "alerted": run.alerted, "recovered": run.recovered}


def freshness_dags(pipeline: Pipeline, source: Path) -> list[DAG]:
    """The freshness DAG of the definition, or none when its freshness has no schedule."""
    from airflow.sdk import DAG, CronTriggerTimetable

    if pipeline.freshness is None or pipeline.freshness.schedule is None:
        return []
    tz = pipeline.timezone
    dag = DAG(
        dag_id=f"{pipeline.dag_id}{FRESHNESS_SUFFIX}",
        description=f"freshness of {pipeline.dag_id}'s tables (at most {pipeline.freshness.max_age_hours:g} h old)",
        schedule=CronTriggerTimetable(cron_of(pipeline.freshness.schedule), timezone=tz),
        start_date=local_midnight(pipeline.start_date, tz).astimezone(zone(tz)),
        catchup=False,  # only the state now matters: missed checks are not worth running
        max_active_runs=1,  # each run reads then writes the alert state record
        tags=sorted({"dagspec", "freshness", *pipeline.tags}),
        default_args={"owner": pipeline.owner},
    )
    DagspecFreshnessOperator(task_id="check_freshness", dag=dag, definition=str(source),
                             doc_md=f"Checks the store tables of `{pipeline.dag_id}` and sends `stale` alerts.")
    return [dag]
