"""The sync DAG: one task that runs dagspec.sync with the connection resolved through Airflow."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DAG


def run_sync(uri: str, conn_id: str, target: str, **_: Any) -> dict[str, Any]:
    from dagspec.airflow.connections import airflow_resolver
    from dagspec.paths import sql_dir
    from dagspec.sync import sync

    report = sync(uri, conn_id, Path(target), resolver=airflow_resolver, sql_dir=sql_dir())
    if report.rejected:
        lines = [str(p) for problems in report.rejected.values() for p in problems]
        raise ValueError(f"{len(report.rejected)} definition(s) rejected (the live ones are unchanged):\n"
                         + "\n".join(lines))
    return {"added": report.added, "updated": report.updated, "deleted": report.deleted}


def build_sync_dag(*, uri: str, conn_id: str, target: Path, schedule: str, start_date: datetime) -> DAG:
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    with DAG(
        dag_id="dagspec_sync",
        description=f"Definitions from {uri} into {target.name}/",
        schedule=schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,
        tags=["dagspec"],
        doc_md=__doc__,
    ) as dag:
        PythonOperator(task_id="sync", python_callable=run_sync, retries=1,
                       op_kwargs={"uri": uri, "conn_id": conn_id, "target": str(target)})
    return dag
