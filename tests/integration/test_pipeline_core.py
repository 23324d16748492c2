"""The core runner on the bundled sample, without Airflow: exact values, window edges, idempotency, the gate."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date
from pathlib import Path

import pytest
from support.expected import expected_revenue, source_orders, warehouse_rows

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.stages import StepFailed

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "dags" / "definitions" / "orders_daily.json"
DAY = date(2025, 3, 1)


def run(day: date, path: Path = ORDERS):
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def test_one_date_gives_exact_values(data_home):
    run(DAY)
    wh = data_home / "warehouse.duckdb"
    assert warehouse_rows(wh, "SELECT * FROM analytics.daily_revenue ORDER BY channel") == expected_revenue(
        data_home / "source.db", DAY
    )
    orders = warehouse_rows(wh, "SELECT order_id, amount FROM analytics.orders ORDER BY order_id")
    assert orders == [(o[0], o[5]) for o in source_orders(data_home / "source.db", DAY)]


def test_rows_on_the_window_edges_land_in_exactly_one_batch(data_home):
    from datetime import datetime

    from sqlalchemy import create_engine, insert

    from dagspec.sample_data import orders

    engine = create_engine(f"sqlite:///{data_home / 'source.db'}")
    with engine.begin() as conn:
        conn.execute(insert(orders), [
            {"order_id": 9_000_001, "customer_id": 1, "ordered_at": datetime(2025, 3, 1, 0, 0, 0), "status": "placed",
             "channel": "web", "amount": 1, "currency": "EUR"},
            {"order_id": 9_000_002, "customer_id": 1, "ordered_at": datetime(2025, 3, 2, 0, 0, 0), "status": "placed",
             "channel": "web", "amount": 1, "currency": "EUR"},
        ])
    run(DAY)
    run(date(2025, 3, 2))
    got = warehouse_rows(data_home / "warehouse.duckdb",
                         "SELECT order_id, batch_date FROM analytics.orders WHERE order_id > 9000000 ORDER BY 1")
    assert got == [(9_000_001, date(2025, 3, 1)), (9_000_002, date(2025, 3, 2))]


def test_rerun_replaces_the_batch_exactly(data_home):
    run(DAY)
    run(date(2025, 3, 2))
    wh = data_home / "warehouse.duckdb"
    before = warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id")
    staged = (data_home / "store/raw/orders/batch_date=2025-03-01/part-00000.parquet").read_bytes()
    run(DAY)
    assert warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id") == before
    assert (data_home / "store/raw/orders/batch_date=2025-03-01/part-00000.parquet").read_bytes() == staged
    assert warehouse_rows(wh, "SELECT batch_date, count(*) FROM analytics.daily_revenue GROUP BY 1 ORDER BY 1") == [
        (DAY, 4), (date(2025, 3, 2), 4)]


def test_failed_expectation_stops_before_publish(data_home):
    run(date(2025, 3, 2))
    wh = data_home / "warehouse.duckdb"
    before = warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id")
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET amount = -5 WHERE order_id = (SELECT min(order_id) FROM orders "
                    "WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02')")
    with pytest.raises(StepFailed, match=r"expect_column_values_to_be_between\(amount\)"):
        run(DAY)
    assert warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id") == before
    assert warehouse_rows(wh, "SELECT count(*) FROM analytics.daily_revenue WHERE batch_date = ?", [DAY]) == [(0,)]
    report = data_home / "reports/orders_daily/check_orders/batch_date=2025-03-01.html"
    assert "FAILED" in report.read_text()


def test_full_snapshot_with_transpiled_sql(data_home):
    path = ROOT / "dags" / "definitions" / "customers_snapshot.json"
    run(DAY, path)
    rows = warehouse_rows(data_home / "warehouse.duckdb",
                          "SELECT sum(customers), count(*) FROM analytics.customer_segments WHERE batch_date = ?", [DAY])
    with sqlite3.connect(data_home / "source.db") as con:
        total, groups = con.execute("SELECT count(*), count(DISTINCT segment || country) FROM customers").fetchone()
    assert rows == [(total, groups)]


def test_unreachable_source_names_the_connection_not_the_password(data_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_SOURCE", "postgres://etl:TopSecret99@127.0.0.1:1/shop")
    with pytest.raises(StepFailed) as info:
        run(DAY)
    assert "dagspec_source" in str(info.value) and "TopSecret99" not in str(info.value)


def test_a_run_cut_differently_never_stages_the_same_days_twice(data_home, tmp_path):
    """batch_days=7 stages a week as one partition; a later run for one day inside it (or a week cut
    across it) is refused with the fix, and writes nothing, instead of holding those rows twice."""
    import json
    from datetime import datetime

    from dagspec.windows import Window

    data = json.loads(ORDERS.read_text())
    data["batch_days"] = 7
    path = tmp_path / "orders_weekly.json"
    path.write_text(json.dumps(data))
    pipeline = load_definition(path)

    def utc(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    run_pipeline(pipeline, Window(utc(date(2025, 3, 1)), utc(date(2025, 3, 8))))
    staged = data_home / "store/raw/orders"
    manifest = json.loads((staged / "batch_date=2025-03-01/_manifest.json").read_text())
    assert manifest["window"] == ["2025-03-01T00:00:00+00:00", "2025-03-08T00:00:00+00:00"]
    week = sum(len(source_orders(data_home / "source.db", date(2025, 3, d))) for d in range(1, 8))
    assert manifest["rows"] == week

    wh = data_home / "warehouse.duckdb"
    before = warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id")
    with pytest.raises(StepFailed) as failed:
        run(date(2025, 3, 4), path)  # one day inside the staged week
    message = str(failed.value)
    assert "overlaps the staged partition raw.orders batch_date=2025-03-01" in message
    assert "fix: re-run 2025-03-01 .. 2025-03-07 as one window" in message
    with pytest.raises(StepFailed, match="batch_date=2025-03-01"):
        run_pipeline(pipeline, Window(utc(date(2025, 3, 5)), utc(date(2025, 3, 12))))  # a week cut across it
    assert sorted(p.name for p in staged.iterdir()) == ["batch_date=2025-03-01"]
    assert warehouse_rows(wh, "SELECT * FROM analytics.orders ORDER BY order_id") == before

    # The same week again replaces it exactly; the next week beside it is fine.
    run_pipeline(pipeline, Window(utc(date(2025, 3, 1)), utc(date(2025, 3, 8))))
    run_pipeline(pipeline, Window(utc(date(2025, 3, 8)), utc(date(2025, 3, 15))))
    assert sorted(p.name for p in staged.iterdir()) == ["batch_date=2025-03-01", "batch_date=2025-03-08"]
    assert warehouse_rows(wh, "SELECT * FROM analytics.orders WHERE batch_date = DATE '2025-03-01' "
                              "ORDER BY order_id") == [r for r in before if r[-1] == date(2025, 3, 1)]
