"""on_fail 'drop_rows': rows failing a row-level 'fail' check go to the quarantine table, only the passing rows
flow on (transform, publish), the counts are in the result, the report and the log; table-level checks are
judged on the passing rows and still stop the run; max_dropped stops it too; a re-run changes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from support.expected import warehouse_rows
from support.warehouse_fixtures import pg_rows

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.stages import StepFailed

DAY = date(2025, 3, 1)
IN_DAY = "ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02'"
STATUSES = ["placed", "shipped", "delivered", "cancelled", "returned"]
BETWEEN = "expect_column_values_to_be_between(amount)"
IN_SET = "expect_column_values_to_be_in_set(status)"


def spoil(data_home: Path) -> dict[int, str]:
    """Three bad orders of the day in the source: order_id -> the check it fails."""
    with sqlite3.connect(data_home / "source.db") as con:
        ids = [r[0] for r in con.execute(f"SELECT order_id FROM orders WHERE {IN_DAY} ORDER BY order_id LIMIT 3")]
        con.execute("UPDATE orders SET amount = -5 WHERE order_id IN (?, ?)", ids[:2])
        con.execute("UPDATE orders SET status = 'lost' WHERE order_id = ?", ids[2:])
    return {ids[0]: BETWEEN, ids[1]: BETWEEN, ids[2]: IN_SET}


def day_orders(data_home: Path) -> set[int]:
    with sqlite3.connect(data_home / "source.db") as con:
        return {r[0] for r in con.execute(f"SELECT order_id FROM orders WHERE {IN_DAY}")}


ROW_CHECKS = [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": STATUSES}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
]


def write_definition(tmp_path: Path, steps: list[dict]) -> Path:
    """t_rows: the day's orders staged, then `steps`."""
    path = tmp_path / "t_rows.json"
    path.write_text(json.dumps({"dag_id": "t_rows", "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}}, *steps]}))
    return path


def staged_definition(tmp_path: Path, extra: list[dict] | None = None, **validate) -> Path:
    return write_definition(tmp_path, [
            {"id": "check", "kind": "validate", "input": "extract_orders", "on_fail": "drop_rows",
             "quarantine": {"schema": "quarantine", "table": "orders"},
             "expectations": ROW_CHECKS + (extra or []), **validate},
            {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql",
             "inputs": ["extract_orders"]},
            {"id": "publish_orders", "kind": "publish", "input": "extract_orders", "after": ["daily_revenue"],
             "table": {"schema": "analytics", "table": "orders"}, "export": {"format": "parquet"}},
    ])


def run(path: Path):
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, DAY))


def report(data_home: Path, step: str = "check") -> tuple[dict, str]:
    stem = data_home / f"reports/t_rows/{step}/batch_date={DAY}"
    return json.loads(stem.with_suffix(".json").read_text()), stem.with_suffix(".html").read_text()


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_only_the_passing_rows_are_published_and_the_failing_ones_are_quarantined(tmp_path, data_home, caplog):
    bad = spoil(data_home)
    everything = day_orders(data_home)
    path = staged_definition(tmp_path)
    with caplog.at_level(logging.INFO, logger="dagspec"):
        results = run(path)
    wh = data_home / "warehouse.duckdb"
    published = {r[0] for r in warehouse_rows(wh, "SELECT order_id FROM analytics.orders")}
    assert published == everything - set(bad)
    exported = warehouse_rows(wh, f"SELECT count(*) FROM read_parquet('{data_home}/store/analytics/orders/**/*.parquet')")
    assert exported == [(len(everything) - 3,)]
    # The transform read the passing rows too.
    assert warehouse_rows(wh, "SELECT sum(orders) FROM dagspec_work.t_rows__daily_revenue") == [(len(everything) - 3,)]
    quarantined = warehouse_rows(wh, "SELECT order_id, failed_expectations, batch_date FROM quarantine.orders "
                                     "ORDER BY order_id")
    assert quarantined == [(i, name, DAY) for i, name in sorted(bad.items())]
    # The staged batch itself is kept whole; the passing rows sit beside it.
    assert warehouse_rows(wh, f"SELECT count(*) FROM read_parquet('{data_home}/store/raw/orders/**/*.parquet')"
                          ) == [(len(everything),)]
    got = results["check"][DAY.isoformat()]
    assert got["success"] is True
    assert (got["rows"], got["rows_passed"], got["rows_dropped"]) == (len(everything), len(everything) - 3, 3)
    assert got["dropped_by"] == {BETWEEN: 2, IN_SET: 1}
    result, page = report(data_home)
    from dagspec.airflow.ui_reports import latest_reports

    assert result["passed"] is True and result["success"] is False  # the step passed; GX's checks did not all
    assert latest_reports(data_home / "reports", load_definition(path))[0]["passed"] is True
    assert result["drop_rows"]["rows_dropped"] == 3 and result["drop_rows"]["dropped_by"] == {BETWEEN: 2, IN_SET: 1}
    assert result["drop_rows"]["passed_table"] == "raw.orders__passed"
    assert all(r["success"] for r in result["drop_rows"]["passing_rows_results"])
    assert f"<b>{len(everything) - 3:,} passed</b> &middot; <b>3 dropped</b>" in page and "verdict: <b>passed" in page
    assert f"<tr><td>{BETWEEN}</td><td>2</td></tr>" in page
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"rows checked={len(everything)} passed={len(everything) - 3} dropped=3" in logged

    passed_dir = data_home / f"store/raw/orders__passed/batch_date={DAY}"
    before = digests(passed_dir)
    record = json.loads((data_home / f"store/_checks/t_rows/check/batch_date={DAY}/checked.json").read_text())
    assert record["partition"] == "raw.orders__passed" and record["passed"] is True
    assert record["manifest_sha256"] == hashlib.sha256((passed_dir / "_manifest.json").read_bytes()).hexdigest()
    run(path)  # the same date again: the same files, the same rows, the failing rows once
    assert digests(passed_dir) == before
    assert {r[0] for r in warehouse_rows(wh, "SELECT order_id FROM analytics.orders")} == everything - set(bad)
    assert warehouse_rows(wh, "SELECT count(*) FROM quarantine.orders") == [(3,)]


def test_aggregate_checks_are_judged_on_the_passing_rows(tmp_path, data_home):
    """A max the bad rows break passes once they are dropped; a row count that needs them stops the run."""
    bad = spoil(data_home)
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET amount = -5000 WHERE order_id = ?", [min(bad)])
    everything = day_orders(data_home)
    ok = staged_definition(tmp_path, [
        {"type": "expect_column_min_to_be_between", "kwargs": {"column": "amount", "min_value": 0}}])
    run(ok)
    result, _ = report(data_home)
    first = {r["type"]: r["success"] for r in result["results"]}
    again = {r["type"]: r["success"] for r in result["drop_rows"]["passing_rows_results"]}
    assert first["expect_column_min_to_be_between"] is False and again["expect_column_min_to_be_between"] is True

    needs_all = staged_definition(tmp_path, [
        {"type": "expect_table_row_count_to_equal", "kwargs": {"value": len(everything)}}])
    with pytest.raises(StepFailed, match=r"expect_table_row_count_to_equal"):
        run(needs_all)
    result, page = report(data_home)
    assert result["drop_rows"]["rows_passed"] == len(everything) - 3 and "verdict: <b>FAILED" in page
    assert result["passed"] is False
    record = json.loads((data_home / f"store/_checks/t_rows/check/batch_date={DAY}/checked.json").read_text())
    assert record["passed"] is False  # the earlier publish stays; nothing reads this batch's passing rows


def test_a_failed_check_that_cannot_name_rows_still_stops(tmp_path, data_home):
    spoil(data_home)
    path = staged_definition(tmp_path, [
        {"type": "expect_column_distinct_values_to_be_in_set", "kwargs": {"column": "channel", "value_set": ["web"]}}])
    with pytest.raises(StepFailed, match=r"expect_column_distinct_values_to_be_in_set"):
        run(path)
    assert not (data_home / "store" / "analytics").exists()


@pytest.mark.parametrize(("limit", "stops"), [(2, True), (0.001, True), (3, False), (0.5, False)])
def test_max_dropped(tmp_path, data_home, limit, stops):
    spoil(data_home)
    path = staged_definition(tmp_path, max_dropped=limit)
    if not stops:
        assert run(path)["check"][DAY.isoformat()]["rows_dropped"] == 3
        return
    with pytest.raises(StepFailed, match=r"3 of \d+ row\(s\) failed a dropping check, above max_dropped"):
        run(path)
    assert not (data_home / "store" / "analytics").exists()
    wh = data_home / "warehouse.duckdb"
    assert warehouse_rows(wh, "SELECT count(*) FROM quarantine.orders") == [(3,)]  # the stewards still see them
    assert warehouse_rows(wh, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders' "
                              "AND table_schema = 'analytics'") == [(0,)]
    result, page = report(data_home)
    assert "above max_dropped" in result["drop_rows"]["stopped"] and "<b>Stopped:</b>" in page


def revenue_definition(tmp_path: Path, run_on: str, **validate) -> Path:
    return write_definition(tmp_path, [
            {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql",
             "inputs": ["extract_orders"]},
            {"id": "check_revenue", "kind": "validate", "input": "daily_revenue", "run_on": run_on,
             "on_fail": "drop_rows", "quarantine": {"schema": "quarantine", "table": "revenue"},
             "expectations": [
                 {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "channel",
                                                                           "value_set": ["web", "store"]}},
                 {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}], **validate},
            {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue",
             "table": {"schema": "analytics", "table": "revenue"}},
    ])


@pytest.mark.parametrize("run_on", ["warehouse", "batch"])
def test_a_warehouse_transform_publishes_only_its_passing_rows(tmp_path, data_home, rows_of, run_on):
    """DuckDB (checked on the warehouse's own connection) and PostgreSQL (GX's SQL engine there, or streamed
    into local DuckDB): the same rows published, quarantined and counted."""
    path = revenue_definition(tmp_path, run_on)
    results = run(path)
    batch = rows_of(f"SELECT channel, orders FROM dagspec_work.t_rows__daily_revenue WHERE batch_date = DATE '{DAY}' "
                    "ORDER BY channel")
    keep = [(c, n) for c, n in batch if c in ("web", "store")]
    assert keep and len(keep) < len(batch)
    assert rows_of("SELECT channel, orders FROM analytics.revenue ORDER BY channel") == keep
    assert rows_of("SELECT channel, failed_expectations FROM quarantine.revenue ORDER BY channel") == [
        (c, "expect_column_values_to_be_in_set(channel)") for c, _ in batch if c not in ("web", "store")]
    got = results["check_revenue"][DAY.isoformat()]
    assert (got["rows"], got["rows_passed"], got["rows_dropped"]) == (len(batch), len(keep), len(batch) - len(keep))
    assert got["dropped_by"] == {"expect_column_values_to_be_in_set(channel)": len(batch) - len(keep)}
    result, page = report(data_home, "check_revenue")
    assert result["drop_rows"]["passed_table"] == "dagspec_work.t_rows__daily_revenue__passed"
    assert f"<b>{len(keep)} passed</b>" in page
    run(path)  # again: the same rows, once
    assert rows_of("SELECT channel, orders FROM analytics.revenue ORDER BY channel") == keep
    assert rows_of("SELECT count(*) FROM quarantine.revenue") == [(len(batch) - len(keep),)]
    assert rows_of("SELECT count(*) FROM dagspec_work.t_rows__daily_revenue__passed") == [(len(keep),)]


def test_a_stopped_postgres_batch_leaves_no_passing_rows_behind(tmp_path, data_home, pg_db):
    run(revenue_definition(tmp_path, "warehouse"))
    assert pg_rows(pg_db, "SELECT count(*) FROM dagspec_work.t_rows__daily_revenue__passed")[0][0] > 0
    with pytest.raises(StepFailed, match="above max_dropped"):
        run(revenue_definition(tmp_path, "warehouse", max_dropped=1))
    assert pg_rows(pg_db, "SELECT count(*) FROM dagspec_work.t_rows__daily_revenue__passed") == [(0,)]


def test_a_model_scores_only_the_passing_rows(home, tmp_path):
    from support.expected import source_orders
    from support.ml_runs import daily_with, utc

    from dagspec.runner import run_step

    def checked(data: dict) -> None:
        at = next(i for i, s in enumerate(data["steps"]) if s["id"] == "order_features")
        data["steps"].insert(at + 1, {
            "id": "check_features", "kind": "validate", "input": "order_features", "on_fail": "drop_rows",
            "quarantine": {"schema": "quarantine", "table": "order_features"}, "expectations": [
                {"type": "expect_column_values_to_be_in_set",
                 "kwargs": {"column": "channel", "value_set": ["web", "store"]}}]})
        next(s for s in data["steps"] if s["id"] == "score_orders")["after"] = ["check_features"]

    pipeline = daily_with(tmp_path / "orders_model_checked.json", checked)
    day = date(2025, 4, 1)
    for step in ("check_features", "score_orders"):
        run_step(pipeline, step, utc(day), utc(day + timedelta(days=1)))
    orders = source_orders(home / "source.db", day)
    scored = warehouse_rows(home / "warehouse.duckdb", "SELECT order_id FROM ml.order_scores ORDER BY order_id")
    assert [r[0] for r in scored] == sorted(o[0] for o in orders if o[4] in ("web", "store"))
    assert len(scored) < len(orders)
