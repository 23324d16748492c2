"""A pipeline pinned to New York business days: each local day (23 and 25 hours on the DST days) is one
partition named by its local date, through the CLI and through Airflow's own timetable and dag.test()."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from support.expected import orders_daily_as, warehouse_rows

pytestmark = pytest.mark.e2e

DAGSPEC = str(Path(sys.executable).with_name("dagspec"))
# The UTC bounds of each New York day, written out by hand (EST is UTC-5, EDT UTC-4).
LOCAL_DAYS = {
    date(2025, 3, 8): ("2025-03-08 05:00:00", "2025-03-09 05:00:00"),
    date(2025, 3, 9): ("2025-03-09 05:00:00", "2025-03-10 04:00:00"),  # 23 hours
    date(2025, 11, 2): ("2025-11-02 04:00:00", "2025-11-03 05:00:00"),  # 25 hours
}


def new_york(dag_id: str = "orders_ny") -> dict:
    return orders_daily_as(dag_id, timezone="America/New_York")


def source_ids(db: Path, day: date) -> list[int]:
    lo, hi = LOCAL_DAYS[day]
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT order_id FROM orders WHERE substr(ordered_at, 1, 19) >= ? "
                                          "AND substr(ordered_at, 1, 19) < ? ORDER BY order_id", (lo, hi))]


def staged_ids(home: Path, dag_id: str, day: date) -> list[int]:
    files = str(home / f"store/raw/{dag_id}_orders/batch_date={day}/*.parquet")
    return [r[0] for r in warehouse_rows(home / "warehouse.duckdb", "SELECT order_id FROM read_parquet(?) ORDER BY 1",
                                         [files])]


def test_each_new_york_day_is_one_partition_by_its_local_date(data_home, tmp_path):
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "orders_ny.json").write_text(json.dumps(new_york()))
    env = {**os.environ, "DAGSPEC_DEFINITIONS": str(definitions), "DAGSPEC_HOME": str(data_home), "COLUMNS": "200"}
    for first, last in (("2025-03-08", "2025-03-09"), ("2025-11-02", "2025-11-02")):
        res = subprocess.run([DAGSPEC, "run", "orders_ny", "--date", first, "--to", last], capture_output=True,
                             text=True, env=env, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    for day in LOCAL_DAYS:
        assert staged_ids(data_home, "orders_ny", day) == source_ids(data_home / "source.db", day), day
        assert source_ids(data_home / "source.db", day), "the sample has orders on every day"
    # The UTC calendar day would have cut elsewhere: 2025-03-09 00:00-05:00Z belongs to the 8th here.
    published = warehouse_rows(data_home / "warehouse.duckdb",
                               "SELECT batch_date, count(*) FROM analytics.orders_ny_orders GROUP BY 1 ORDER BY 1")
    assert published == [(d, len(source_ids(data_home / "source.db", d))) for d in sorted(LOCAL_DAYS)]


def test_airflow_schedules_it_on_the_new_york_clock(airflow_db, dags_folder, data_home):
    from airflow.dag_processing.dagbag import DagBag

    (dags_folder / "definitions" / "orders_ny.json").write_text(json.dumps(new_york()))
    dag = DagBag(dag_folder=str(dags_folder)).dags["orders_ny"]
    assert "America/New_York" in str(dag.timetable.timezone)
    run = dag.test(logical_date=datetime(2025, 11, 3, 5, tzinfo=UTC))  # the end of the 25-hour day
    assert run.state == "success"
    assert (run.data_interval_start, run.data_interval_end) == (datetime(2025, 11, 2, 4, tzinfo=UTC),
                                                                datetime(2025, 11, 3, 5, tzinfo=UTC))
    assert staged_ids(data_home, "orders_ny", date(2025, 11, 2)) == source_ids(data_home / "source.db", date(2025, 11, 2))
