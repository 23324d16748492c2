"""Real Airflow: the loader in a DagBag, per-definition import errors, and dag.test() runs with exact outcomes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.expected import expected_revenue, source_orders, warehouse_rows

pytestmark = pytest.mark.e2e


def dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def run_for(dag, day: date):
    """dag.test() for the run whose data interval starts on `day` (Airflow 3 infers it from run_after)."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    if dag.dag_id == "customers_snapshot":
        end += timedelta(hours=2)
    return dag.test(logical_date=end)


MODEL_DAGS = {"orders_model", "orders_model_retrain"}  # the shipped retraining examples


def task_states(dag_run) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == dag_run.run_id,
                                                 TaskInstance.dag_id == dag_run.dag_id).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def test_examples_load_as_dags_with_their_settings(airflow_db, dags_folder):
    bag = dagbag(dags_folder)
    assert bag.import_errors == {}
    assert set(bag.dags) == {"orders_daily", "customers_snapshot"} | MODEL_DAGS
    dag = bag.dags["orders_daily"]
    assert {t.task_id for t in dag.tasks} == {"extract_orders", "check_orders", "publish_orders", "daily_revenue",
                                              "publish_revenue"}
    assert dag.get_task("daily_revenue").upstream_task_ids == {"check_orders", "extract_orders"}
    assert dag.get_task("publish_orders").upstream_task_ids == {"check_orders", "extract_orders"}
    assert set(dag.tags) == {"dagspec", "example", "orders"}
    assert dag.default_args["owner"] == "analytics" and dag.default_args["retries"] == 1
    assert "orders/daily_revenue.sql" not in (dag.doc_md or "") and "check_orders" in dag.doc_md
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable" and dag.timetable.expression == "0 0 * * *"


def test_broken_definition_gets_its_own_import_error_and_others_load(airflow_db, dags_folder):
    defs = dags_folder / "definitions"
    (defs / "typo.json").write_text(json.dumps({
        "dag_id": "typo", "start_date": "2025-01-01", "schedul": "@daily",
        "steps": [{"id": "e", "kind": "extract", "source": {"table": "orders"}, "target": {"schema": "raw", "table": "t"}}],
    }))
    (defs / "not_json.json").write_text("{ this is not json")
    dup = json.loads((defs / "orders_daily.json").read_text())
    (defs / "orders_copy.json").write_text(json.dumps(dup))

    dagbag(dags_folder)  # the first parse writes one stub per bad definition; the dag-processor's next pass lists it
    bag = dagbag(dags_folder)
    assert set(bag.dags) == {"customers_snapshot"} | MODEL_DAGS  # orders_daily is duplicated, so neither copy loads
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    assert set(errors) == {"typo.py", "not_json.py", "orders_copy.py", "orders_daily.py"}
    assert "definitions/typo.json: $.schedul: unknown key 'schedul' (fix: did you mean 'schedule'?)" in errors["typo.py"]
    assert "definitions/not_json.json: line 1, column 3: invalid JSON" in errors["not_json.py"]
    assert "also used by definitions/orders_copy.json" in errors["orders_daily.py"]

    (defs / "typo.json").unlink()
    (defs / "orders_copy.json").unlink()
    bag = dagbag(dags_folder)
    assert set(bag.dags) == {"customers_snapshot", "orders_daily"} | MODEL_DAGS
    assert {Path(k).name for k in bag.import_errors} == {"not_json.py"}


def test_two_dates_exact_values_and_rerun_is_identical(airflow_db, dags_folder, data_home):
    dag = dagbag(dags_folder).dags["orders_daily"]
    days = [date(2025, 3, 1), date(2025, 3, 2)]
    for day in days:
        assert run_for(dag, day).state == "success"

    wh, src = data_home / "warehouse.duckdb", data_home / "source.db"
    for day in days:
        assert warehouse_rows(wh, "SELECT * FROM analytics.daily_revenue WHERE batch_date = ? ORDER BY channel",
                              [day]) == expected_revenue(src, day)
        staged = warehouse_rows(wh, "SELECT order_id, amount FROM read_parquet(?) ORDER BY order_id",
                                [str(data_home / f"store/raw/orders/batch_date={day}/part-00000.parquet")])
        assert staged == [(o[0], o[5]) for o in source_orders(src, day)]
    exported = data_home / "store/analytics/daily_revenue/batch_date=2025-03-01"
    assert json.loads((exported / "_manifest.json").read_text())["rows"] == len(expected_revenue(src, days[0]))

    def snapshot():
        files = sorted((data_home / "store").rglob("*.parquet"))
        return ({str(f.relative_to(data_home)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files},
                warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id"),
                warehouse_rows(wh, "SELECT * FROM analytics.daily_revenue ORDER BY batch_date, channel"))

    before = snapshot()
    assert run_for(dag, days[0]).state == "success"
    assert snapshot() == before


def test_failed_expectation_fails_the_run_and_leaves_the_warehouse_untouched(airflow_db, dags_folder, data_home):
    definition = dags_folder / "definitions" / "orders_daily.json"
    data = json.loads(definition.read_text())
    data["retries"] = 0
    definition.write_text(json.dumps(data))
    dag = dagbag(dags_folder).dags["orders_daily"]
    assert run_for(dag, date(2025, 3, 2)).state == "success"
    wh = data_home / "warehouse.duckdb"
    before = (warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id"),
              warehouse_rows(wh, "SELECT * FROM analytics.daily_revenue ORDER BY channel"))

    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET status = 'lost' WHERE order_id IN (SELECT order_id FROM orders "
                    "WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02' LIMIT 3)")
    dag_run = run_for(dag, date(2025, 3, 1))
    assert dag_run.state == "failed"
    states = task_states(dag_run)
    assert states["extract_orders"] == "success" and states["check_orders"] == "failed"
    assert {states[t] for t in ("publish_orders", "daily_revenue", "publish_revenue")} == {"upstream_failed"}
    after = (warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id"),
             warehouse_rows(wh, "SELECT * FROM analytics.daily_revenue ORDER BY channel"))
    assert after == before
    assert not (data_home / "store/analytics/daily_revenue/batch_date=2025-03-01").exists()
