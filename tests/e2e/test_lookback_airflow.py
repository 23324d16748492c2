"""Self-healing lookback in real Airflow (dag.test): the run's first task finds the gaps once, every step processes
them with the run's own date, the last task records each date's outcome for the next run, and the deployment's
Airflow Variables change the range."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.expected import orders_daily_as, source_orders, warehouse_rows

from dagspec.cli.local_runs import run_days
from dagspec.connections import env_resolver
from dagspec.spec.model import Pipeline
from dagspec.store import Store

pytestmark = pytest.mark.e2e

DAG_ID = "orders_lb"
D = {n: date(2025, 3, n) for n in range(1, 8)}


def definition() -> dict:
    return orders_daily_as(DAG_ID, lookback=3, retries=0)  # no retries: dag.test() would wait out the delay


def run_for(dag, day: date):
    """The run whose data interval starts on `day` (Airflow 3 infers it from run_after)."""
    return dag.test(logical_date=datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))


def task_state_and_gaps(dag_run) -> tuple[dict[str, str], list[str]]:
    from airflow.models import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == dag_run.run_id,
                                                 TaskInstance.dag_id == DAG_ID).all()
        row = session.query(XComModel).filter(XComModel.run_id == dag_run.run_id, XComModel.dag_id == DAG_ID,
                                              XComModel.task_id == "dagspec-lookback",
                                              XComModel.key == "return_value").one()
        value = json.loads(row.value) if isinstance(row.value, str) else row.value
        return {ti.task_id: str(ti.state) for ti in tis}, [g["batch_date"] for g in value]


def source_ids(db: Path, day: date) -> list[int]:
    return [r[0] for r in source_orders(db, day)]


def staged_ids(home: Path, day: date) -> list[int]:
    files = str(home / f"store/raw/{DAG_ID}_orders/batch_date={day}/*.parquet")
    return [r[0] for r in warehouse_rows(home / "warehouse.duckdb", "SELECT order_id FROM read_parquet(?) ORDER BY 1",
                                         [files])]


def manifest_mtime(home: Path, day: date) -> int:
    return (home / f"store/raw/{DAG_ID}_orders/batch_date={day}/_manifest.json").stat().st_mtime_ns


def record(day: date) -> dict:
    return Store.from_connection(env_resolver("dagspec_store")).run_record(DAG_ID, day) or {}


def test_airflow_runs_heal_gaps_record_failures_and_follow_the_variables(airflow_db, dags_folder, data_home,
                                                                         monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    (dags_folder / "definitions" / f"{DAG_ID}.json").write_text(json.dumps(definition()))
    bag = DagBag(dag_folder=str(dags_folder))
    dag = bag.dags[DAG_ID]
    assert {"dagspec-lookback", "dagspec-outcome"} <= set(dag.task_ids)
    assert set(bag.dags["orders_daily"].task_ids) == {s["id"] for s in orders_daily_as("x")["steps"]}  # lookback 0
    # Days 1, 2 and 4 loaded outside Airflow; day 3 never ran.
    pipeline = Pipeline.model_validate(definition())
    assert not run_days(DAG_ID, pipeline, [D[1], D[2], D[4]], keep_going=False)
    loaded = {d: manifest_mtime(data_home, D[d]) for d in (2, 4)}

    run = run_for(dag, D[5])  # lookback 3 from the definition: 2, 3, 4 looked at, 3 is the gap
    states, gaps = task_state_and_gaps(run)
    assert run.state == "success" and set(states.values()) == {"success"}, states
    assert gaps == ["2025-03-03"]
    for d in (3, 5):
        assert staged_ids(data_home, D[d]) == source_ids(data_home / "source.db", D[d]), d
        assert (record(D[d])["state"], record(D[d])["run_id"]) == ("success", run.run_id)
    assert {d: manifest_mtime(data_home, D[d]) for d in (2, 4)} == loaded
    published = warehouse_rows(data_home / "warehouse.duckdb",
                               f"SELECT DISTINCT batch_date FROM analytics.{DAG_ID}_orders ORDER BY 1")
    assert [r[0] for r in published] == [D[1], D[2], D[3], D[4], D[5]]

    # Day 1's partition goes; the deployment turns the lookback off; day 6 fails its checks.
    shutil.rmtree(data_home / f"store/raw/{DAG_ID}_orders/batch_date={D[1]}")
    monkeypatch.setenv("AIRFLOW_VAR_DAGSPEC_LOOKBACK", "0")
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET status = 'lost' WHERE order_id = ?", (source_ids(data_home / "source.db", D[6])[0],))
    run = run_for(dag, D[6])
    states, gaps = task_state_and_gaps(run)
    assert run.state == "failed" and gaps == []
    assert states["check_orders"] == "failed" and states["dagspec-outcome"] == "failed", states
    assert record(D[6])["state"] == "failed" and record(D[6])["steps"]["check_orders"] == "failed"
    assert not (data_home / f"store/raw/{DAG_ID}_orders/batch_date={D[1]}").exists()

    # This DAG's own Variable wins over the deployment's: 6 days back heals day 1 (missing) and 6 (failed).
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET status = 'placed' WHERE status = 'lost'")
    monkeypatch.setenv(f"AIRFLOW_VAR_DAGSPEC_LOOKBACK__{DAG_ID.upper()}", "6")
    run = run_for(dag, D[7])
    states, gaps = task_state_and_gaps(run)
    assert run.state == "success", states
    assert gaps == ["2025-03-01", "2025-03-06"]
    for d in (1, 6, 7):
        assert staged_ids(data_home, D[d]) == source_ids(data_home / "source.db", D[d]), d
        assert (record(D[d])["state"], record(D[d])["run_date"]) == ("success", "2025-03-07"), d
    assert {d: manifest_mtime(data_home, D[d]) for d in (2, 4)} == loaded
