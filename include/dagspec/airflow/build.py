"""One Pipeline -> one Airflow DAG: a PythonOperator per step, dependencies from the step graph."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from dagspec.spec.graph import upstream
from dagspec.spec.load import load_definition
from dagspec.spec.model import Pipeline
from dagspec.spec.schedule import cron_of

KIND_ICONS = {"extract": "⬇ extract", "validate": "✔ validate", "transform": "⚙ transform", "publish": "⬆ publish"}


def build_dag(pipeline: Pipeline, source: Path):
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, CronDataIntervalTimetable

    schedule = CronDataIntervalTimetable(cron_of(pipeline.schedule), timezone="UTC") if pipeline.schedule else None
    dag = DAG(
        dag_id=pipeline.dag_id,
        description=(pipeline.description or None) and pipeline.description.splitlines()[0][:200],
        doc_md=doc_md(pipeline, source),
        schedule=schedule,
        start_date=_utc(pipeline.start_date),
        end_date=_utc(pipeline.end_date) if pipeline.end_date else None,
        catchup=pipeline.catchup,
        max_active_runs=pipeline.max_active_runs,
        tags=sorted({"dagspec", *pipeline.tags}),
        default_args={
            "owner": pipeline.owner,
            "retries": pipeline.retries,
            "retry_delay": timedelta(minutes=pipeline.retry_delay_minutes),
        },
    )
    deps = upstream(pipeline)
    tasks = {}
    for step in pipeline.steps:
        tasks[step.id] = PythonOperator(
            task_id=step.id,
            dag=dag,
            python_callable=execute_step,
            op_kwargs={"definition": str(source), "step_id": step.id},
            doc_md=f"**{KIND_ICONS.get(step.kind, step.kind)}**  \n{step.description}".strip(),
        )
    for step_id, ups in deps.items():
        for up in ups:
            tasks[up] >> tasks[step_id]
    return dag


def _utc(day) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def doc_md(pipeline: Pipeline, source: Path) -> str:
    deps = upstream(pipeline)
    rows = "\n".join(
        f"| `{s.id}` | {s.kind} | {', '.join(f'`{d}`' for d in deps[s.id]) or '-'} | {s.description or ''} |"
        for s in pipeline.steps
    )
    return (
        f"### {pipeline.dag_id}\n\n{pipeline.description}\n\n"
        f"- definition: `{source.parent.name}/{source.name}`\n- owner: {pipeline.owner}\n"
        f"- schedule: `{pipeline.schedule}` (UTC; each run processes its data interval)\n"
        f"- warehouse: `{pipeline.warehouse.conn_id}`, store: `{pipeline.store.conn_id}`\n\n"
        f"| step | kind | after | what |\n|---|---|---|---|\n{rows}\n"
    )


@lru_cache(maxsize=64)
def _pipeline(definition: str, mtime_ns: int) -> Pipeline:
    return load_definition(definition)


def execute_step(definition: str, step_id: str, **context: Any) -> Any:
    """The task body: run one step for the run's data interval through the core runner."""
    import logging

    from dagspec.airflow.connections import airflow_resolver
    from dagspec.runner import run_step

    pipeline = _pipeline(definition, Path(definition).stat().st_mtime_ns)
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start is None or end is None or end <= start:
        raise ValueError(
            f"run {context.get('run_id')} has no data interval; dagspec steps process [start, end). "
            "Trigger with a logical date (the UI's 'Trigger DAG w/ config' or `dagspec run`)."
        )
    return run_step(pipeline, step_id, start, end, resolver=airflow_resolver, log=logging.getLogger("dagspec"))
