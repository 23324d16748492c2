"""An hourly pipeline in real Airflow (dag.test, as tests/e2e/test_timezones.py): each run is one hour, staged at
batch_date=D/batch_time=HH00 and published with its batch_start; its lookback task counts hours, heals the ones
missing before it in the same run, and the outcome task records each hour, not the day."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from support.expected import orders_daily_as, warehouse_rows
from support.subdaily import source_ids

from dagspec.connections import env_resolver
from dagspec.partitions import PartitionKey
from dagspec.store import Store

pytestmark = pytest.mark.e2e

DAG_ID = "orders_hourly_af"
NOON = datetime(2025, 3, 1, 12, tzinfo=UTC)


def definition() -> dict:
    data = orders_daily_as(DAG_ID, schedule="@hourly", lookback=2, retries=0)
    check = next(s for s in data["steps"] if s["id"] == "check_orders")
    check["expectations"] = check["expectations"][1:]  # the row-count bound is for a day's orders
    return data


def staged_ids(home, key: PartitionKey) -> list[int]:
    files = str(home / f"store/raw/{DAG_ID}_orders/{key.segment}/*.parquet")
    with duckdb.connect() as con:
        return [r[0] for r in con.execute("SELECT order_id FROM read_parquet(?) ORDER BY 1", [files]).fetchall()]


def test_an_hourly_dag_runs_one_hour_per_run_and_heals_the_hours_before(airflow_db, dags_folder, data_home):
    from airflow.dag_processing.dagbag import DagBag

    (dags_folder / "definitions" / f"{DAG_ID}.json").write_text(json.dumps(definition()))
    dag = DagBag(dag_folder=str(dags_folder)).dags[DAG_ID]
    run = dag.test(logical_date=NOON + timedelta(hours=1))  # the run of [12:00, 13:00)
    assert run.state == "success"
    assert (run.data_interval_start, run.data_interval_end) == (NOON, NOON + timedelta(hours=1))
    hours = [NOON + timedelta(hours=h) for h in (-2, -1, 0)]  # its own hour and the two the lookback healed
    keys = [PartitionKey.sub_daily(h) for h in hours]
    store = Store.from_connection(env_resolver("dagspec_store"))
    assert [k for k in store.partitions("raw", f"{DAG_ID}_orders")] == keys
    for h, k in zip(hours, keys):
        assert staged_ids(data_home, k) == source_ids(data_home, h, h + timedelta(hours=1)), k
        assert store.run_state(DAG_ID, k) == "success"
    assert store.run_state(DAG_ID, NOON.date()) is None  # recorded by hour, never as the whole day
    published = warehouse_rows(data_home / "warehouse.duckdb", f"SELECT batch_start, count(*), min(order_id) FROM "
                               f"analytics.{DAG_ID}_orders GROUP BY 1 ORDER BY 1")
    assert published == [(h.replace(tzinfo=None), len(ids), ids[0]) for h in hours
                         if (ids := source_ids(data_home, h, h + timedelta(hours=1)))]
    revenue = warehouse_rows(data_home / "warehouse.duckdb", f"SELECT batch_start, sum(orders) FROM "
                             f"analytics.{DAG_ID}_daily_revenue GROUP BY 1 ORDER BY 1")
    assert revenue == [(r[0], r[1]) for r in published]
    # the next hour's run finds nothing to heal: the three hours before it are loaded
    nxt = dag.test(logical_date=NOON + timedelta(hours=2))
    assert nxt.state == "success"
    assert len(store.partitions("raw", f"{DAG_ID}_orders")) == 4
