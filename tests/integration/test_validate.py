"""Validation: GX suites (inline or GX suite files), computed in DuckDB in GX's result format or by GX's SQL
engine inside PostgreSQL; fail blocks, warn records; failing rows quarantined."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.expected import warehouse_rows
from support.warehouse_fixtures import pg_rows

from dagspec.checks import gx_engine
from dagspec.checks.sql_engine import Evaluator, supported
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.spec.suites import Check, load_suite
from dagspec.stages import StepFailed

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 3, 1)

CHECKS = [
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 8}),
    ("expect_table_row_count_to_equal", {"value": 10}),
    ("expect_column_values_to_not_be_null", {"column": "amount"}),
    ("expect_column_values_to_be_null", {"column": "note"}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 50}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "strict_min": True, "mostly": 0.8}),
    ("expect_column_values_to_be_in_set", {"column": "status", "value_set": ["placed", "shipped"]}),
    ("expect_column_values_to_not_be_in_set", {"column": "status", "value_set": ["lost"]}),
    ("expect_column_values_to_be_unique", {"column": "order_id"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["order_id", "line"]}),
    ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 0, "max_value": 10}),
    ("expect_column_min_to_be_between", {"column": "amount", "min_value": 0}),
    ("expect_column_max_to_be_between", {"column": "amount", "max_value": 100}),
    ("expect_column_sum_to_be_between", {"column": "line", "min_value": 0, "max_value": 100}),
    ("expect_column_value_lengths_to_equal", {"column": "status", "value": 6}),
    ("expect_column_values_to_match_regex", {"column": "status", "regex": "^s"}),
    ("expect_column_values_to_not_match_regex", {"column": "status", "regex": "ped$"}),
    ("expect_column_unique_value_count_to_be_between", {"column": "status", "min_value": 1, "max_value": 2}),
]
SAME = ("element_count", "unexpected_count", "missing_count", "observed_value")
PERCENT = ("unexpected_percent", "missing_percent", "unexpected_percent_total", "unexpected_percent_nonmissing")


def sample_table() -> pa.Table:
    return pa.table({
        "order_id": pa.array([1, 2, 3, 3, 4, 5, 6, 7, 8, None], pa.int64()),
        "line": pa.array([1, 1, 1, 2, 1, 1, 1, 1, 1, None], pa.int64()),
        "amount": pa.array([1.5, 0.0, 3.0, 60.0, None, 2.0, 4.5, -1.0, 7.0, 8.0], pa.float64()),
        "status": ["placed", "shipped", "placed", "lost", None, "shipped", "placed", "returned", "placed", "placed"],
        "note": [None] * 9 + ["hello"],
    })


def test_duckdb_results_match_great_expectations_pandas_results(tmp_path):
    """The default engine gives what GX gives: same success, counts, percents and observed values."""
    table = sample_table()
    pq.write_table(table, tmp_path / "b.parquet")
    checks = [Check(t, k, "fail", {}, i) for i, (t, k) in enumerate(CHECKS)]
    assert all(supported(c) for c in checks)
    con = duckdb.connect()
    ours = Evaluator(con, f"read_parquet('{tmp_path / 'b.parquet'}')").run(checks)
    theirs = gx_engine.run_pandas(table.to_pandas(), checks, "compare")
    assert len(ours) == len(theirs) == len(CHECKS)
    for c, a, b in zip(checks, ours, theirs):
        assert a["success"] == b["success"], (c.type, c.kwargs, a, b)
        assert a["expectation_config"]["type"] == b["expectation_config"]["type"]
        assert set(a) == set(b), c.type
        ra, rb = a["result"], b["result"]
        for key in SAME:
            assert ra.get(key) == rb.get(key), (c.type, key, ra, rb)
        for key in PERCENT:
            assert (ra.get(key) is None) == (rb.get(key) is None), (c.type, key)
            if ra.get(key) is not None:
                assert math.isclose(ra[key], rb[key]), (c.type, key, ra, rb)
        if "partial_unexpected_list" in rb:
            # pandas turns an int column with a null into floats; compare numbers as numbers.
            num = lambda x: float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x  # noqa: E731
            norm = lambda xs, num=num: Counter(json.dumps(  # noqa: E731
                {k: num(v) for k, v in x.items()} if isinstance(x, dict) else num(x), sort_keys=True) for x in xs)
            assert norm(ra["partial_unexpected_list"]) == norm(rb["partial_unexpected_list"]), c.type
    assert [r["success"] for r in ours].count(False) >= 10


def test_suite_file_in_gx_format_loads_with_severities():
    checks = load_suite(ROOT / "include" / "expectations" / "orders.json", "orders.json")
    assert len(checks) == 8
    assert [c.severity for c in checks].count("warn") == 2  # meta.severity 'warn' and GX severity 'warning'


def write_definition(tmp_path: Path, validate: dict, extra_steps=(), warehouse: str | None = None) -> Path:
    definition = {
        "dag_id": "t_validate", "start_date": "2025-01-01",
        "steps": [
            {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
             "target": {"schema": "raw", "table": "orders"}},
            {"id": "check", "kind": "validate", "input": "extract_orders", **validate},
            {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
             "table": {"schema": "analytics", "table": "orders"}, "export": {"format": "parquet"}},
            *extra_steps,
        ],
    }
    path = tmp_path / "t_validate.json"
    path.write_text(json.dumps(definition))
    return path


def run(path: Path, day: date = DAY):
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def report(data_home: Path, step: str = "check") -> dict:
    return json.loads((data_home / f"reports/t_validate/{step}/batch_date={DAY}.json").read_text())


def test_suite_file_passes_and_a_warn_is_recorded_while_the_run_continues(tmp_path, data_home):
    path = write_definition(tmp_path, {"suite": "orders.json", "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "channel", "value_set": ["web"]},
         "severity": "warn"}]})
    results = run(path)
    assert results["check"][DAY.isoformat()]["success"] is True
    # The sample has a few orders from an unlisted channel: the suite's own channel check warns too.
    assert results["check"][DAY.isoformat()]["warned"] == ["expect_column_values_to_be_in_set(channel)"] * 2
    got = report(data_home)
    assert got["statistics"]["evaluated_expectations"] == 9
    warned = [r for r in got["results"] if not r["success"]]
    assert [(r["severity"], r["result"]["unexpected_count"] > 0) for r in warned] == [("warn", True)] * 2
    assert warehouse_rows(data_home / "warehouse.duckdb",
                          "SELECT count(*) FROM analytics.orders")[0][0] == got["results"][0]["result"]["observed_value"]


def test_a_failing_fail_expectation_blocks_every_publish(tmp_path, data_home):
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET amount = -5 WHERE order_id = (SELECT min(order_id) FROM orders "
                    "WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02')")
    path = write_definition(tmp_path, {"suite": "orders.json"})
    with pytest.raises(StepFailed, match=r"expect_column_values_to_be_between\(amount\)"):
        run(path)
    assert not (data_home / "warehouse.duckdb").exists() or warehouse_rows(
        data_home / "warehouse.duckdb",
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'") == [(0,)]
    assert not (data_home / "store" / "analytics").exists()
    failed = [r for r in report(data_home)["results"] if not r["success"]]
    assert failed[0]["result"]["unexpected_count"] == 1 and failed[0]["result"]["partial_unexpected_list"] == [-5.0]


def test_failing_rows_go_to_the_quarantine_table(tmp_path, data_home):
    with sqlite3.connect(data_home / "source.db") as con:
        bad = con.execute("SELECT order_id FROM orders WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02' "
                          "ORDER BY order_id LIMIT 2").fetchall()
        con.execute("UPDATE orders SET amount = -5 WHERE order_id = ?", bad[0])
        con.execute("UPDATE orders SET status = 'lost' WHERE order_id = ?", bad[1])
    path = write_definition(tmp_path, {
        "expectations": [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0},
             "severity": "warn"},
            {"type": "expect_column_values_to_be_in_set", "kwargs": {
                "column": "status", "value_set": ["placed", "shipped", "delivered", "cancelled", "returned"]},
             "severity": "warn"},
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "order_id"}},
        ],
        "quarantine": {"schema": "quarantine", "table": "orders"}})
    run(path)
    rows = warehouse_rows(data_home / "warehouse.duckdb",
                          "SELECT order_id, failed_expectations, batch_date FROM quarantine.orders ORDER BY order_id")
    assert rows == [(bad[0][0], "expect_column_values_to_be_between(amount)", DAY),
                    (bad[1][0], "expect_column_values_to_be_in_set(status)", DAY)]
    run(path)  # a re-run replaces the batch's quarantined rows, it does not add to them
    assert warehouse_rows(data_home / "warehouse.duckdb", "SELECT count(*) FROM quarantine.orders") == [(2,)]


def test_an_expectation_dagspec_does_not_compute_goes_to_gx(tmp_path, data_home):
    path = write_definition(tmp_path, {"expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
        {"type": "expect_column_to_exist", "kwargs": {"column": "order_id"}},
        {"type": "expect_column_distinct_values_to_be_in_set", "kwargs": {"column": "channel",
                                                                           "value_set": ["web", "mobile"]},
         "severity": "warn"},
    ]})
    run(path)
    got = report(data_home)["results"]
    assert [r["type"] for r in got] == ["expect_column_values_to_not_be_null", "expect_column_to_exist",
                                        "expect_column_distinct_values_to_be_in_set"]
    assert [r["success"] for r in got] == [True, True, False]
    assert sorted(got[2]["result"]["partial_unexpected_list"]) == ["partner", "store"]
    assert got[2]["expectation_config"]["severity"] == "warning"


REVENUE = {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql",
           "inputs": ["extract_orders"]}


def checks_on_revenue(run_on: str, max_orders: int) -> dict:
    return {"id": "check_revenue", "kind": "validate", "input": "daily_revenue", "run_on": run_on,
            "expectations": [
                {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 4}},
                {"type": "expect_column_values_to_be_between", "kwargs": {"column": "orders", "min_value": 1,
                                                                            "max_value": max_orders}},
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "channel"}}]}


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_checks_run_inside_the_warehouse(tmp_path, data_home, warehouse, request):
    if warehouse == "postgres":
        request.getfixturevalue("pg_db")
    ok = write_definition(tmp_path, {"expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
        [REVENUE, checks_on_revenue("warehouse", 10_000)])
    run(ok)
    got = report(data_home, "check_revenue")
    assert got["success"] and got["results"][0]["result"]["observed_value"] == 4
    engine = "great_expectations SQL engine in PostgreSQL" if warehouse == "postgres" else "DuckDB (GX result format)"
    assert got["meta"]["engine"] == engine
    too_strict = write_definition(tmp_path, {"expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
        [REVENUE, checks_on_revenue("warehouse", 3)])
    with pytest.raises(StepFailed, match=r"expect_column_values_to_be_between\(orders\)"):
        run(too_strict)
    failed = [r for r in report(data_home, "check_revenue")["results"] if not r["success"]]
    assert failed[0]["result"]["unexpected_count"] == 4


def test_quarantine_inside_postgres_after_gx_checked_the_batch_there(tmp_path, data_home, pg_db):
    """run_on warehouse in PostgreSQL: GX's SQL engine gives the verdicts, the failing rows go to the
    quarantine table by one statement inside PostgreSQL, labelled with the checks they failed."""
    checks = checks_on_revenue("warehouse", 3)
    checks["expectations"] = [
        {**checks["expectations"][1], "severity": "warn"},  # orders between 1 and 3
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "channel", "value_set": ["web"]},
         "severity": "warn"},
    ]
    checks["quarantine"] = {"schema": "quarantine", "table": "revenue"}
    path = write_definition(tmp_path, {"expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]}, [REVENUE, checks])
    run(path)
    assert report(data_home, "check_revenue")["meta"]["engine"] == "great_expectations SQL engine in PostgreSQL"
    batch = pg_rows(pg_db, "SELECT channel, orders FROM dagspec_work.t_validate__daily_revenue WHERE batch_date = %s "
                           "ORDER BY channel", [DAY])
    expected = []
    for channel, orders in batch:
        failed = [*(["expect_column_values_to_be_between(orders)"] if orders > 3 else []),
                  *(["expect_column_values_to_be_in_set(channel)"] if channel != "web" else [])]
        if failed:
            expected.append((channel, orders, "; ".join(failed), DAY))
    assert expected and len(expected) < len(batch) + 1
    got = pg_rows(pg_db, "SELECT channel, orders, failed_expectations, batch_date FROM quarantine.revenue "
                         "ORDER BY channel")
    assert got == expected
    run(path)  # a re-run replaces the batch's quarantined rows
    assert pg_rows(pg_db, "SELECT count(*) FROM quarantine.revenue") == [(len(expected),)]


def test_a_transform_batch_in_postgres_can_be_checked_by_the_default_engine(tmp_path, data_home, pg_db):
    path = write_definition(tmp_path, {"expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
        [REVENUE, checks_on_revenue("batch", 10_000)])
    run(path)
    got = report(data_home, "check_revenue")
    assert got["success"] and got["meta"]["engine"] == "DuckDB (GX result format)"
    assert pg_rows(pg_db, "SELECT count(*) FROM dagspec_work.t_validate__daily_revenue") == [(4,)]
