"""One Pipeline -> one Airflow DAG: one task per step, dependencies from the step graph.

Imported only by the loader at DAG parse time (it imports Airflow; the core never does).

Parse cost matters here: the dag-processor rebuilds every DAG of every definition each cycle, so
this module does per DAG only what the DAG needs (bench/parse_bench.py measures it against a plain
airflow.sdk loader and dag-factory).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from dagspec.airflow.alerts import RunSuccessCallback, alert_callbacks
from dagspec.airflow.assets import inlets as step_inlets
from dagspec.airflow.assets import outlets as step_outlets
from dagspec.airflow.assets import record_window, run_window, schedule_of
from dagspec.airflow.lookback import attach_lookback, mark_done, shared_gaps
from dagspec.airflow.report_link import TrainingReportLink, ValidationReportLink
from dagspec.errors import StepSkipped
from dagspec.plan import plan_of
from dagspec.spec.bundles import folders_of
from dagspec.spec.discovery import load_cached, shared_folders
from dagspec.spec.model import Pipeline
from dagspec.spec.schedule import cron_of
from dagspec.windows import local_midnight, zone

if TYPE_CHECKING:

    from airflow.sdk import DAG

KIND_ICONS = {"extract": "⬇ extract", "validate": "✔ validate", "transform": "⚙ transform", "publish": "⬆ publish",
              "train": "◆ train", "evaluate": "⚖ evaluate", "promote": "★ promote", "score": "◎ score", "drift": "∿ drift",
              "monitor": "◉ monitor"}


class DagspecStepOperator(BaseOperator):
    """Runs one dagspec step for the run's data interval (lighter to build than a PythonOperator).

    No ``__init__`` of its own: Airflow wraps each class's own ``__init__`` in its default-applying decorator, which
    copies the DAG's default_args and params each time (a fifth of building a task), so a subclass that defines one
    pays it twice. ``for_step`` sets what the step needs once the operator is built."""

    ui_color = "#e8f1fb"
    definition: str
    step_id: str

    @classmethod
    def for_step(cls, definition: str, step_id: str, **kwargs: Any) -> DagspecStepOperator:
        task = cls(**kwargs)
        task.definition, task.step_id = definition, step_id
        return task

    def execute(self, context: Any) -> Any:
        return execute_step(self.definition, self.step_id, **context)


class DagspecValidateOperator(DagspecStepOperator):
    """A validate step: the UI shows a button to the batch's validation report, passed or failed."""

    operator_extra_links = (ValidationReportLink(),)

    def execute(self, context: Any) -> Any:
        self.report_url = validation_report_url(self.definition, self.step_id, context)
        return super().execute(context)


class DagspecTrainOperator(DagspecStepOperator):
    """A train step: the UI shows a button to the registered version's training report."""

    operator_extra_links = (TrainingReportLink(),)

    def execute(self, context: Any) -> Any:
        result = super().execute(context)
        self.report_url = (result or {}).get("report_url", "")
        return result


OPERATORS: dict[str, type[DagspecStepOperator]] = {"validate": DagspecValidateOperator, "train": DagspecTrainOperator}


@lru_cache(maxsize=1)
def _dag_defaults() -> dict[str, Any]:
    """DAG settings whose defaults come from Airflow's config: read once, not once per DAG."""
    from airflow.sdk.configuration import conf

    # Every value the DAG would otherwise look up per DAG (a config read checks three environment variables
    # first): disable_bundle_versioning alone was a sixth of building a 10-task DAG.
    return {
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint("core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


def build_dag(pipeline: Pipeline, source: Path) -> DAG:
    from airflow.sdk import DAG, CronDataIntervalTimetable

    tz = pipeline.timezone
    timetable = CronDataIntervalTimetable(cron_of(pipeline.schedule), timezone=tz) if pipeline.schedule else None
    plan = plan_of(pipeline)
    ml = bool(plan.models_trained or plan.retrain_signals)  # model pipelines: see airflow/ml.py
    retrain = None
    if ml:
        from dagspec.airflow.ml import retrain_condition

        retrain = retrain_condition(plan)
    schedule = schedule_of(pipeline, timetable, retrain)
    deps = plan.upstream()
    dag = DAG(
        dag_id=pipeline.dag_id,
        description=(pipeline.description or None) and pipeline.description.splitlines()[0][:200],
        doc_md=doc_md(pipeline, source, deps),
        schedule=schedule,
        # Aware in the pipeline's zone: Airflow shows the DAG's times in it.
        start_date=local_midnight(pipeline.start_date, tz).astimezone(zone(tz)),
        end_date=local_midnight(pipeline.end_date, tz).astimezone(zone(tz)) if pipeline.end_date else None,
        catchup=pipeline.catchup,
        max_active_runs=pipeline.max_active_runs,
        tags=sorted({"dagspec", *pipeline.tags}),
        default_args={
            "owner": pipeline.owner,
            "retries": pipeline.retries,
            "retry_delay": timedelta(minutes=pipeline.retry_delay_minutes),
        },
        on_success_callback=(RunSuccessCallback(str(source))
                             if pipeline.alerts and pipeline.alerts.sends("success") else None),
        **_dag_defaults(),
    )
    definition = str(source)
    callbacks = alert_callbacks(pipeline, definition)
    tasks = {}
    for step in pipeline.steps:
        tasks[step.id] = OPERATORS.get(step.kind, DagspecStepOperator).for_step(
            definition,
            step.id,
            task_id=step.id,
            dag=dag,
            doc_md=f"**{KIND_ICONS[step.kind]}**  \n{step.description}".strip(),
            outlets=step_outlets(plan.step(step.id)),
            inlets=step_inlets(plan.step(step.id)),
            **callbacks,
        )
    for step_id, ups in deps.items():
        task = tasks[step_id]
        for up in ups:
            # What `up >> task` does for two operators of one DAG, without its per-edge DAG hashing
            # (a third of the build time at 10 steps).
            tasks[up].downstream_task_ids.add(step_id)
            task.upstream_task_ids.add(up)
    if ml:
        from dagspec.airflow.ml import attach_ml

        attach_ml(dag, plan, tasks)
    if pipeline.lookback:
        attach_lookback(dag, definition, plan, tasks, callbacks)
    return dag


def doc_md(pipeline: Pipeline, source: Path, deps: dict[str, list[str]] | None = None) -> str:
    deps = deps if deps is not None else plan_of(pipeline).upstream()
    rows = "\n".join(
        f"| `{s.id}` | {s.kind} | {', '.join(f'`{d}`' for d in deps[s.id]) or '-'} | {s.description or ''} |"
        for s in pipeline.steps
    )
    return (
        f"### {pipeline.dag_id}\n\n{pipeline.description}\n\n"
        f"- definition: `{source.parent.name}/{source.name}`\n- owner: {pipeline.owner}\n"
        f"- schedule: `{pipeline.schedule}` ({pipeline.timezone}; each run processes its data interval)\n"
        f"- warehouse: `{pipeline.warehouse.conn_id}`, store: `{pipeline.store.conn_id}`\n\n"
        f"| step | kind | after | what |\n|---|---|---|---|\n{rows}\n"
    )


def validation_report_url(definition: str, step_id: str, context: dict[str, Any]) -> str:
    """Where the report of this run's first batch will be (stages/validate_report.py names it by batch_date)."""
    from dagspec.windows import Window, utc

    pipeline = load_cached(definition)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or end <= start:
        return ""
    from dagspec.stages.validate_report import report_stem

    first = pipeline.batches_of(Window(utc(start), utc(end)))[0]
    return f"{reports_url()}/{report_stem(pipeline.dag_id, step_id, first.batch_date)}.html"


def reports_url() -> str:
    """The UI's reports route (the dagspec plugin): absolute when Airflow knows its own address."""
    from airflow.configuration import conf

    from dagspec.airflow.ui_route import REPORTS_ROUTE

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}{REPORTS_ROUTE}"


def execute_step(definition: str, step_id: str, **context: Any) -> Any:
    """The task body: run one step for the run's data interval through the core runner."""
    import logging

    from dagspec.airflow.connections import airflow_resolver
    from dagspec.runner import run_step

    pipeline = load_cached(definition)
    start, end = run_window(context)
    folders = folders_of(Path(definition), shared_folders())  # a bundle's own sql/ and expectations/
    gaps = shared_gaps(context) if pipeline.lookback else []
    try:
        result = run_step(pipeline, step_id, start, end, resolver=airflow_resolver, log=logging.getLogger("dagspec"),
                          folders=folders, reports_url=reports_url(), gaps=gaps)
    except StepSkipped as skip:
        from airflow.sdk.exceptions import AirflowSkipException

        if pipeline.lookback:
            mark_done(context, skipped=True)
        # Skipped, not failed: the run stays green and Airflow skips what needs this step.
        raise AirflowSkipException(str(skip)) from None
    record_window(pipeline.dag_id, plan_of(pipeline).step(step_id), context, start, end)
    if pipeline.lookback:
        mark_done(context)
    return result
