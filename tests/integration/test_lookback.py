"""Self-healing lookback, in this process (the `dagspec run` path) with a real PostgreSQL source: a run heals
exactly the earlier dates whose partitions are missing or whose last run failed, and nothing loaded is redone.

The module creates its own database (ds_lookback_<pid>) and drops it at the end. Expected rows come from
PostgreSQL through its own driver.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.expected import warehouse_rows
from support.pg_databases import conn_json, scratch_database
from support.runtime_conditions import pg_admin

from dagspec.cli.local_runs import run_days
from dagspec.connections import env_resolver
from dagspec.lookback import gap_batches
from dagspec.runner import window_of_day
from dagspec.spec.model import Pipeline
from dagspec.store import Store

DB = f"ds_lookback_{os.getpid()}"
DAYS = [date(2025, 3, d) for d in range(1, 7)]


@pytest.fixture(scope="module")
def pg_orders():
    with scratch_database(DB):
        with pg_admin(DB) as c:
            c.execute("CREATE TABLE orders (order_id int PRIMARY KEY, amount numeric(10,2) NOT NULL, "
                      "ordered_at timestamptz NOT NULL)")
            # 3..8 orders a day, every 3 hours from each midnight: day n holds n + 2 rows.
            rows = [(100 * d.day + i, f"{d.day}.{i:02d}", datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(hours=3 * i))
                    for d in DAYS for i in range(d.day + 2)]
            with c.cursor() as cur:
                cur.executemany("INSERT INTO orders VALUES (%s, %s, %s)", rows)
        yield conn_json(DB)


def pipeline(dag_id: str, lookback: int) -> Pipeline:
    return Pipeline.model_validate({
        "dag_id": dag_id, "start_date": "2025-03-01", "lookback": lookback,
        "steps": [
            {"id": "extract_orders", "kind": "extract",
             "source": {"conn_id": "lb_pg", "table": "orders", "incremental_column": "ordered_at"},
             "target": {"schema": "raw", "table": f"{dag_id}_orders"}},
            {"id": "check_orders", "kind": "validate", "input": "extract_orders",
             "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
            {"id": "daily_total", "kind": "transform", "after": ["check_orders"], "inputs": ["extract_orders"],
             "query": "SELECT CAST(:batch_date AS DATE) AS day, count(*) AS orders, sum(amount) AS total "
                      "FROM {{ ref('extract_orders') }}",
             "target": {"schema": "analytics", "table": f"{dag_id}_daily"}},
            {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
             "table": {"schema": "analytics", "table": f"{dag_id}_orders"}},
        ],
    })


@pytest.fixture()
def home(data_home, pg_orders, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LB_PG", pg_orders)
    return data_home


def store() -> Store:
    return Store.from_connection(env_resolver("dagspec_store"))


def source_ids(day: date) -> list[int]:
    lo = datetime(day.year, day.month, day.day, tzinfo=UTC)
    with pg_admin(DB) as c:
        return [r[0] for r in c.execute("SELECT order_id FROM orders WHERE ordered_at >= %s AND ordered_at < %s "
                                        "ORDER BY 1", (lo, lo + timedelta(days=1)))]


def staged_ids(home: Path, dag_id: str, day: date) -> list[int]:
    files = str(home / f"store/raw/{dag_id}_orders/batch_date={day}/*.parquet")
    return [r[0] for r in warehouse_rows(home / "warehouse.duckdb", "SELECT order_id FROM read_parquet(?) ORDER BY 1",
                                         [files])]


def published(home: Path, dag_id: str) -> tuple[list, list]:
    db = home / "warehouse.duckdb"
    return (warehouse_rows(db, f"SELECT batch_date, order_id, amount FROM analytics.{dag_id}_orders ORDER BY 2"),
            warehouse_rows(db, f"SELECT day, orders, total FROM analytics.{dag_id}_daily ORDER BY 1"))


def footprint(home: Path, dag_id: str, day: date) -> dict[str, tuple[int, str]]:
    """Every file the store holds for the date (staged parts, manifest, check record): mtime and bytes."""
    root = home / "store"
    files = [*(root / f"raw/{dag_id}_orders/batch_date={day}").iterdir(),
             root / f"_checks/{dag_id}/check_orders/batch_date={day}/checked.json"]
    return {str(f.relative_to(root)): (f.stat().st_mtime_ns, f.read_bytes().hex()) for f in files}


def damage(home: Path, dag_id: str) -> None:
    """Day 3's staged partition gone, day 4's last run failed (its partitions are still there)."""
    shutil.rmtree(home / f"store/raw/{dag_id}_orders/batch_date=2025-03-03")
    store().record_run(dag_id, date(2025, 3, 4), "failed", "publish_orders: the warehouse was down")


def test_a_run_heals_the_missing_and_the_failed_dates_and_redoes_nothing_loaded(home):
    healing, one_by_one = pipeline("lb_heal", 5), pipeline("lb_ref", 0)
    for d in DAYS:
        assert not run_days("lb_ref", one_by_one, [d], keep_going=False)
    assert not run_days("lb_heal", healing, DAYS[:5], keep_going=False, heal=True)
    damage(home, "lb_heal")
    untouched = {d: footprint(home, "lb_heal", d) for d in (DAYS[0], DAYS[1], DAYS[4])}
    before = published(home, "lb_heal")

    day6 = DAYS[5]
    gaps = gap_batches(healing, store(), window_of_day(healing, day6), day6, healing.lookback)
    assert [g.batch_date for g in gaps] == [date(2025, 3, 3), date(2025, 3, 4)]
    assert not run_days("lb_heal", healing, [day6], keep_going=False, heal=True)

    for d in DAYS:
        assert staged_ids(home, "lb_heal", d) == staged_ids(home, "lb_ref", d) == source_ids(d), d
    assert published(home, "lb_heal") == published(home, "lb_ref")
    assert published(home, "lb_heal") != before  # day 6 arrived
    for d in (date(2025, 3, 3), date(2025, 3, 4), day6):
        record = store().run_record("lb_heal", d)
        assert (record["state"], record["run_date"]) == ("success", "2025-03-06"), d
    for d, files in untouched.items():
        assert footprint(home, "lb_heal", d) == files, f"{d} was redone"
        assert store().run_record("lb_heal", d)["run_date"] == d.isoformat()
    # Healed: the next run finds nothing to do before it.
    assert gap_batches(healing, store(), window_of_day(healing, day6), day6, 5) == []


def test_lookback_zero_processes_only_its_own_date(home):
    plain = pipeline("lb_zero", 0)
    assert not run_days("lb_zero", plain, DAYS[:5], keep_going=False, heal=True)
    damage(home, "lb_zero")
    assert not run_days("lb_zero", plain, [DAYS[5]], keep_going=False, heal=True)
    assert staged_ids(home, "lb_zero", DAYS[5]) == source_ids(DAYS[5])
    assert not (home / "store/raw/lb_zero_orders/batch_date=2025-03-03").exists()
    assert store().run_state("lb_zero", date(2025, 3, 4)) == "failed"
    days_published = {r[0] for r in published(home, "lb_zero")[0]}
    assert days_published == set(DAYS)  # day 3 was published before its staged partition went


def test_a_gap_that_fails_again_stays_a_gap_and_the_date_is_recorded_failed(home, monkeypatch):
    healing = pipeline("lb_again", 2)
    assert not run_days("lb_again", healing, DAYS[:4], keep_going=False, heal=True)
    damage(home, "lb_again")
    monkeypatch.setenv("AIRFLOW_CONN_LB_PG", json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 5432,
                                                         "login": "postgres", "schema": f"{DB}_gone"}))
    [(day, error)] = run_days("lb_again", healing, [DAYS[4]], keep_going=False, heal=True)
    assert day == DAYS[4] and DB + "_gone" in error
    for d in (date(2025, 3, 3), date(2025, 3, 4), DAYS[4]):
        assert store().run_state("lb_again", d) == "failed", d
    assert [g.batch_date for g in gap_batches(healing, store(), window_of_day(healing, DAYS[5]), DAYS[5], 2)] == \
        [date(2025, 3, 4), date(2025, 3, 5)]
