"""BigQuery on local-bigquery 0.3.2 (a separate process, its own Python 3.13 venv): BigQuery as the
warehouse (transforms in BigQuery SQL, batches swapped with MERGE) and as an extract source
(query results as Arrow, through the Storage Read API or REST)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from support.expected import expected_revenue

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.stages import StepFailed
from dagspec.store import Store
from dagspec.warehouse.bigquery_load import load_parquet

D1, D2 = date(2025, 3, 1), date(2025, 3, 2)


def write(tmp_path: Path, pipeline: dict) -> Path:
    path = tmp_path / f"{pipeline['dag_id']}.json"
    path.write_text(json.dumps({"start_date": "2025-01-01", **pipeline}))
    return path


def run(path: Path, day: date):
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def rows(client, sql: str) -> list[tuple]:
    return [tuple(r.values()) for r in client.query(sql).result()]


def test_bigquery_warehouse_runs_transforms_and_publishes_batches(tmp_path, data_home, bq, monkeypatch):
    client, prefix = bq
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", __import__("os").environ["AIRFLOW_CONN_BQ"])
    path = write(tmp_path, {"dag_id": "t_bq_wh", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "check", "kind": "validate", "input": "extract_orders", "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "dialect": "duckdb",
         "inputs": ["extract_orders"], "target": {"schema": f"{prefix}_work", "table": "daily_revenue"}},
        {"id": "check_revenue", "kind": "validate", "input": "daily_revenue", "expectations": [
            {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 4}}]},
        {"id": "revenue_total", "kind": "transform", "sql": "total.sql", "inputs": ["daily_revenue"],
         "materialization": "view", "target": {"schema": f"{prefix}_mart", "table": "revenue_total"}},
        {"id": "publish", "kind": "publish", "input": "daily_revenue",
         "table": {"schema": f"{prefix}_mart", "table": "daily_revenue"}},
    ]})
    sql_dir = tmp_path / "sql"
    (sql_dir / "orders").mkdir(parents=True)
    (sql_dir / "orders" / "daily_revenue.sql").write_text(
        (Path(__file__).resolve().parents[2] / "include/sql/orders/daily_revenue.sql").read_text())
    (sql_dir / "total.sql").write_text("SELECT channel, SUM(orders) AS orders FROM {{ ref('daily_revenue') }} "
                                       "GROUP BY channel")
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql_dir))
    run(path, D1)
    run(path, D2)
    want = expected_revenue(data_home / "source.db", D1) + expected_revenue(data_home / "source.db", D2)
    sql = f"SELECT * FROM `dagspec-test.{prefix}_mart.daily_revenue` ORDER BY batch_date, channel"
    got = rows(client, sql)
    assert got == want
    total = rows(client, f"SELECT * FROM `dagspec-test.{prefix}_mart.revenue_total` ORDER BY channel")
    assert [(c, int(n)) for c, n in total] == sorted(
        (c, sum(r[1] for r in want if r[0] == c)) for c in {r[0] for r in want})
    run(path, D1)
    assert rows(client, sql) == got
    assert not [t for t in client.list_tables("_dagspec_scratch")]  # scratch tables are dropped


def seed_orders(client, dataset: str) -> list[dict]:
    client.create_dataset(dataset, exists_ok=True)
    data = [
        {"order_id": 1, "ordered_at": datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC), "amount": 5.0},
        {"order_id": 2, "ordered_at": datetime(2025, 3, 1, 0, 0, 0, tzinfo=UTC), "amount": 7.5},
        {"order_id": 3, "ordered_at": datetime(2025, 3, 1, 23, 0, 0, tzinfo=UTC), "amount": 1.25},
        {"order_id": 4, "ordered_at": datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC), "amount": 3.0},
    ]
    table = pa.Table.from_pylist(data, schema=pa.schema([("order_id", pa.int64()),
                                                         ("ordered_at", pa.timestamp("us", tz="UTC")),
                                                         ("amount", pa.float64())]))
    load_parquet(client, f"dagspec-test.{dataset}.orders", table.schema, table.to_batches())
    return data


@pytest.mark.parametrize("conn_id", ["bq", "bq_storage"])
def test_bigquery_source_extracts_the_window(tmp_path, data_home, bq, conn_id):
    client, prefix = bq
    seed_orders(client, f"{prefix}_shop")
    path = write(tmp_path, {"dag_id": "t_bq_src", "steps": [
        {"id": "extract", "kind": "extract", "source": {"kind": "bigquery", "conn_id": conn_id,
                                                         "dataset": f"{prefix}_shop", "table": "orders",
                                                         "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "bq_orders"}},
        {"id": "extract_q", "kind": "extract", "source": {
            "kind": "bigquery", "conn_id": conn_id,
            "query": f"SELECT order_id, amount * 2 AS doubled FROM `dagspec-test.{prefix}_shop.orders` "
                     "WHERE ordered_at >= :from_date AND ordered_at < :to_date"},
         "target": {"schema": "raw", "table": "bq_query"}},
    ]})
    run(path, D1)
    store = Store(data_home / "store")
    got = store.dataset("raw", "bq_orders", [D1]).to_table().sort_by("order_id")
    assert got.column("order_id").to_pylist() == [2, 3]
    assert got.column("amount").to_pylist() == [7.5, 1.25]
    assert got.schema.field("ordered_at").type == pa.timestamp("us", tz="UTC")
    q = store.dataset("raw", "bq_query", [D1]).to_table().sort_by("order_id")
    assert q.to_pylist() == [{"order_id": 2, "doubled": 15.0}, {"order_id": 3, "doubled": 2.5}]


def test_bigquery_source_error_names_the_table(tmp_path, data_home, bq):
    client, prefix = bq
    path = write(tmp_path, {"dag_id": "t_bq_missing", "steps": [
        {"id": "extract", "kind": "extract", "source": {"kind": "bigquery", "conn_id": "bq",
                                                         "dataset": f"{prefix}_none", "table": "orders",
                                                         "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "x"}}]})
    with pytest.raises(StepFailed, match=f"{prefix}_none"):
        run(path, D1)


def test_bigquery_table_and_merge_materialisations(tmp_path, data_home, bq, monkeypatch):
    client, prefix = bq
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", __import__("os").environ["AIRFLOW_CONN_BQ"])
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "by_channel.sql").write_text(
        "SELECT channel, COUNT(*) AS orders, CASE WHEN {{ params.broken }} THEN CAST(channel AS INT64) ELSE 0 END "
        "AS boom FROM {{ ref('extract_orders') }} GROUP BY channel")
    (sql_dir / "last_order.sql").write_text(
        "SELECT customer_id, MAX(order_id) AS last_order_id FROM {{ ref('extract_orders') }} GROUP BY customer_id")
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql_dir))

    def pipeline(broken: str) -> Path:
        return write(tmp_path, {"dag_id": "t_bq_mat", "params": {"broken": broken}, "steps": [
            {"id": "extract_orders", "kind": "extract",
             "source": {"table": "orders", "incremental_column": "ordered_at"},
             "target": {"schema": "raw", "table": "orders"}},
            {"id": "by_channel", "kind": "transform", "sql": "by_channel.sql", "inputs": ["extract_orders"],
             "materialization": "table", "target": {"schema": f"{prefix}_mart", "table": "by_channel"}},
            {"id": "last_order", "kind": "transform", "sql": "last_order.sql", "inputs": ["extract_orders"],
             "unique_key": ["customer_id"], "target": {"schema": f"{prefix}_mart", "table": "last_order"}},
        ]})

    run(pipeline("false"), D1)
    run(pipeline("false"), D2)
    by_channel = f"SELECT channel, orders, batch_date FROM `dagspec-test.{prefix}_mart.by_channel` ORDER BY channel"
    before = rows(client, by_channel)
    assert {r[2] for r in before} == {D2} and len(before) == 4
    last = rows(client, f"SELECT customer_id, COUNT(*) FROM `dagspec-test.{prefix}_mart.last_order` "
                        "GROUP BY customer_id HAVING COUNT(*) > 1")
    assert last == []  # merged on the key: one row per customer across both days
    with pytest.raises(StepFailed, match="is unchanged"):
        run(pipeline("true"), D1)
    assert rows(client, by_channel) == before


def test_a_history_input_reads_the_published_batches_up_to_the_batch(tmp_path, data_home, bq, monkeypatch):
    from support.expected import source_orders
    from support.history_steps import counting_history

    client, prefix = bq
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", __import__("os").environ["AIRFLOW_CONN_BQ"])
    path = write(tmp_path, {"dag_id": "t_bq_history", "steps": counting_history(
        f"{prefix}_mart", days=1, target={"schema": f"{prefix}_mart", "table": "seen"})})
    for day in (D1, D2, D1):
        run(path, day)
    got = rows(client, f"SELECT batch_date, orders_seen FROM `dagspec-test.{prefix}_mart.seen` ORDER BY 1")
    db = data_home / "source.db"
    assert got == [(D1, len(source_orders(db, D1))), (D2, len(source_orders(db, D1)) + len(source_orders(db, D2)))]
