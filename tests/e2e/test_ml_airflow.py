"""The model flow in real Airflow (dag.test): retrain -> champion, daily scoring, drift -> Asset event ->
an asset-triggered retrain that keeps the champion when the challenger is not better."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.expected import source_orders, warehouse_rows

pytestmark = pytest.mark.e2e
ASSET_URI = "dagspec://models/orders_lost/retrain"


def dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def task_states(dag_run) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == dag_run.run_id,
                                                 TaskInstance.dag_id == dag_run.dag_id).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def xcom(dag_run, task_id: str, key: str = "return_value"):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter(XComModel.run_id == dag_run.run_id, XComModel.dag_id == dag_run.dag_id,
                                              XComModel.task_id == task_id, XComModel.key == key).one()
        if key != "return_value":
            return XComModel.deserialize_value(row)
        value = row.value
        return json.loads(value) if isinstance(value, str) else value


def asset_events() -> list:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [(e.id, e.extra) for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == ASSET_URI).order_by(AssetEvent.id)]


def queued_for(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == dag_id).count()


def unpause(dag_id: str) -> None:
    """What `airflow dags unpause` does: Airflow queues asset-triggered runs only for unpaused DAGs."""
    from airflow.models import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == dag_id).update({"is_paused": False})


def prepare_history(home: Path) -> None:
    """Ninety days of order features, made by the core runner: the history a retrain reads."""
    from dagspec.runner import run_step
    from dagspec.spec import load_definition

    daily = load_definition(Path(__file__).resolve().parents[2] / "dags/definitions/orders_model.json")
    for step in ("extract_orders", "extract_customers", "order_features"):
        run_step(daily, step, midnight(date(2025, 1, 1)), midnight(date(2025, 4, 1)))


def test_model_dags_load_with_the_retrain_asset(airflow_db, dags_folder):
    bag = dagbag(dags_folder)
    assert not bag.import_errors
    daily, retrain = bag.dags["orders_model"], bag.dags["orders_model_retrain"]
    signal = daily.get_task("drift_check_retrain")
    assert signal.upstream_task_ids == {"drift_check"} and [a.uri for a in signal.outlets] == [ASSET_URI]
    assert daily.get_task("score_orders").upstream_task_ids == {"order_features"}
    assert type(retrain.timetable).__name__ == "AssetOrTimeSchedule"
    assert retrain.timetable.asset_condition.uri == ASSET_URI
    assert retrain.timetable.timetable.expression == "0 4 * * 1"
    assert retrain.get_task("promote").upstream_task_ids == {"evaluate"}


def test_retrain_score_and_drift_through_airflow(airflow_db, dags_folder, data_home, monkeypatch):
    from dagspec.connections import env_resolver
    from dagspec.ml.registry import Registry

    prepare_history(data_home)
    bag = dagbag(dags_folder)
    daily, retrain = bag.dags["orders_model"], bag.dags["orders_model_retrain"]

    # The weekly run of Monday 2025-03-31 04:00 trains the first model: promoted on its minimums.
    run = retrain.test(logical_date=datetime(2025, 3, 31, 4, tzinfo=UTC))
    assert run.state == "success", task_states(run)
    decision = xcom(run, "promote")
    assert decision["promoted"] is True and decision["version"] == "1"
    registry = Registry.open(env_resolver)
    assert str(registry.champion("orders_lost").version) == "1"

    # A normal day: every order scored, no drift, so no Asset event (the signal task is skipped).
    day = date(2025, 4, 1)
    run = daily.test(logical_date=midnight(day + timedelta(days=1)))
    states = task_states(run)
    assert run.state == "success" and states["score_orders"] == "success", states
    assert states["drift_check"] == "success" and states["drift_check_retrain"] == "skipped"
    expected = [o[0] for o in source_orders(data_home / "source.db", day)]
    scored = warehouse_rows(data_home / "warehouse.duckdb",
                            "SELECT order_id FROM ml.order_scores WHERE batch_date = ? ORDER BY order_id", [day])
    assert [r[0] for r in scored] == expected
    assert asset_events() == []

    # A day of big partner orders: drift -> the retrain Asset event, with the reasons, queues the retrain DAG.
    unpause("orders_model_retrain")
    day = date(2025, 4, 2)
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET channel = 'partner', amount = amount * 4 "
                    "WHERE ordered_at >= '2025-04-02' AND ordered_at < '2025-04-03'")
    run = daily.test(logical_date=midnight(day + timedelta(days=1)))
    states = task_states(run)
    assert run.state == "success" and states["drift_check_retrain"] == "success", states
    drift = xcom(run, "drift_check")
    assert drift["drifted"] is True and {r.split(":")[0] for r in drift["reasons"]} == {"channel", "amount"}
    events = asset_events()
    assert len(events) == 1 and events[0][1]["reasons"] == drift["reasons"]
    assert events[0][1]["window_end"] == "2025-04-03T00:00:00+00:00"
    assert queued_for("orders_model_retrain") == 1

    # What the scheduler does next: an asset-triggered run (no data interval) that consumed the event.
    # dag.test has no asset-triggered mode, so its run is given the event the scheduler would attach.
    import airflow.models.dagrun as dagrun_module

    original = dagrun_module.get_or_create_dagrun

    def with_event(**kwargs):
        from airflow.models.asset import AssetEvent

        dr = original(**kwargs)
        session = kwargs["session"]
        dr.consumed_asset_events.append(session.get(AssetEvent, events[0][0]))
        session.commit()
        return dr

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", with_event)
    run = retrain.test(logical_date=None, run_after=datetime(2025, 4, 3, 0, 5, tzinfo=UTC))
    assert run.state == "success", task_states(run)
    train = xcom(run, "train")
    assert train["version"] == "2"
    decision = xcom(run, "promote")
    assert decision["window"] == ["2025-04-02T00:00:00+00:00", "2025-04-03T00:00:00+00:00"]  # the drift window
    # Trained on the same history plus one odd day, the challenger is not better by the margin: no change.
    assert decision["promoted"] is False and decision["champion_version"] == "1"
    assert str(registry.champion("orders_lost").version) == "1"
    report = Path(train["report"])
    assert report.exists() and (report.parent / "roc.png").exists()
    # The train task's "Training report" button: the plugin's reports route to that version's page.
    rel = report.relative_to(data_home / "reports").as_posix()
    assert rel == "orders_model_retrain/train/version_2/report.html"
    assert xcom(run, "train", "_link_TrainingReportLink") == train["report_url"] == f"/dagspec/reports/{rel}"
