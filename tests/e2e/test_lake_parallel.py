"""Warehouse steps of different DAG runs at the same time, on DuckLake: a backfill on a real scheduler with two task
slots and a lake whose catalog is in PostgreSQL. The task instances' own start and end dates show a transform or
publish of one run overlapping one of another run, and afterwards the published tables hold every source row of
every day, once, with each day's rollup exact.

LocalExecutor with parallelism 2 rather than CeleryExecutor: a Celery stack (two workers, PostgreSQL, Redis) takes
well over three minutes to start and run here, and the overlap is the warehouse's property, not the executor's
(`make bench-ops` measures it under Celery). On the DuckDB file the same steps would queue for its lock.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from conftest import need
from ops_stack import (
    dags_folder,
    ducklake_on_postgres,
    lake_rows,
    pairs_across_runs,
    postgres_db,
    postgres_up,
    running_stack,
    warehouse_task_ids,
)
from support.expected import expected_revenue, source_orders
from support.pinned_examples import FIXED_END
from test_dev_stack import REPO, poll

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

DAG = "orders_daily"
FIRST = date(2025, 3, 1)
DAYS = [FIRST + timedelta(days=i) for i in range(6)]


def test_warehouse_steps_of_two_runs_overlap_on_ducklake_and_every_row_lands(tmp_path):
    need(postgres_up(), "PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres)")
    dags = dags_folder(tmp_path, [])
    spec = json.loads((REPO / "dags" / "definitions" / f"{DAG}.json").read_text())
    # On 2 busy cores a task process can lose its first contact with the api-server: retry within seconds, not the
    # shipped 5 minutes. Every run must still end a success.
    # And it ends with the fixed sample, so the scheduler runs no interval of today's dates beside the backfill.
    spec.update(retries=2, retry_delay_minutes=0.1, end_date=FIXED_END)
    (dags / "definitions" / f"{DAG}.json").write_text(json.dumps(spec))
    writers = warehouse_task_ids(spec)
    assert writers == {"publish_orders", "daily_revenue", "publish_revenue"}
    with ducklake_on_postgres(tmp_path) as lake, postgres_db("ds_ops_lake_meta") as url, running_stack(
        tmp_path, dags, url, [DAG], AIRFLOW_CONN_DAGSPEC_WAREHOUSE=lake, AIRFLOW__CORE__PARALLELISM="2"
    ) as stack:
        backfill = stack.post("/api/v2/backfills", {
            "dag_id": DAG, "from_date": f"{DAYS[0]}T00:00:00Z", "to_date": f"{DAYS[-1]}T00:00:00Z",
            "max_active_runs": 2,
        })
        poll(lambda: f"backfill not complete\n{stack.component_logs('scheduler')}", 600,
             lambda: stack.get(f"/api/v2/backfills/{backfill['id']}")["completed_at"], every=3)
        runs = stack.runs(DAG, run_type="backfill")
        assert [(r["logical_date"][:10], r["state"]) for r in runs] == [(str(d), "success") for d in DAYS]
        tis = [t for r in runs for t in stack.task_instances(DAG, r["dag_run_id"]) if t["task_id"] in writers]
        assert len(tis) == len(DAYS) * len(writers) and {t["state"] for t in tis} == {"success"}

        together = pairs_across_runs(tis)
        assert together, [(t["dag_run_id"], t["task_id"], t["start_date"], t["end_date"]) for t in tis]

        src = tmp_path / "data" / "source.db"
        expected = {day: source_orders(src, day) for day in DAYS}
        total = sum(len(v) for v in expected.values())
        assert lake_rows(lake, "SELECT count(*), count(DISTINCT order_id), count(DISTINCT batch_date) "
                               "FROM analytics.orders") == [(total, total, len(DAYS))]
        for day in DAYS:
            assert lake_rows(lake, "SELECT order_id, amount FROM analytics.orders WHERE batch_date = $d "
                                   "ORDER BY order_id", {"d": day}) == [(o[0], o[5]) for o in expected[day]]
            assert lake_rows(lake, "SELECT * FROM analytics.daily_revenue WHERE batch_date = $d ORDER BY channel",
                             {"d": day}) == expected_revenue(src, day)
        # The tables are the lake's Parquet files, and no DuckDB file was written beside them.
        assert list((tmp_path / "lake").rglob("*.parquet"))
        assert not (tmp_path / "data" / "warehouse.duckdb").exists()
