"""run_on 'warehouse' on a BigQuery warehouse (local-bigquery 0.3.2): the SQL evaluator's queries run inside
BigQuery (transpiled by sqlglot, values bound as query parameters), with the same GX-format results the DuckDB
path gives for the same rows, and the batch is never copied out of BigQuery."""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from pathlib import Path

import pytest
from test_bigquery import D1, rows, run, write

from dagspec.stages import StepFailed
from dagspec.warehouse.bigquery import BigQuerySession

SQL = """SELECT order_id, customer_id, status, channel, amount,
       CASE WHEN MOD(order_id, 50) = 0 THEN NULL ELSE channel END AS channel_or_null,
       CAST(ordered_at AS DATE) AS order_day
FROM {{ ref('extract_orders') }}
"""

EXPECTATIONS = [
    ("expect_column_values_to_not_be_null", {"column": "order_id"}),
    ("expect_column_values_to_not_be_null", {"column": "channel_or_null"}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 490}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 490, "mostly": 0.9}),
    ("expect_column_values_to_be_between", {"column": "order_day", "min_value": "2025-03-01",
                                            "max_value": "2025-03-01"}),
    ("expect_column_values_to_be_in_set", {"column": "status",
                                           "value_set": ["placed", "shipped", "delivered", "cancelled"]}),
    ("expect_column_values_to_not_be_in_set", {"column": "channel", "value_set": ["fax"]}),
    ("expect_column_values_to_be_unique", {"column": "order_id"}),
    ("expect_column_values_to_be_unique", {"column": "customer_id"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["customer_id", "channel"]}),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 10_000}),
    ("expect_table_row_count_to_equal", {"value": 400}),
    ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 0, "max_value": 100}),
    ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 0, "max_value": 1000}),
    ("expect_column_stdev_to_be_between", {"column": "amount", "min_value": 0}),
    ("expect_column_unique_value_count_to_be_between", {"column": "status", "min_value": 1, "max_value": 4}),
    ("expect_column_values_to_not_match_regex", {"column": "status", "regex": "^ret"}),
    ("expect_column_value_lengths_to_be_between", {"column": "channel", "min_value": 3, "max_value": 6}),
    # Not computed in BigQuery (no exact MEDIAN aggregate) / not by the SQL evaluator at all: GX's pandas
    # engine on these columns only.
    ("expect_column_median_to_be_between", {"column": "amount", "min_value": 0, "max_value": 1000}),
    ("expect_column_distinct_values_to_be_in_set", {"column": "channel", "value_set": ["web", "mobile", "store"]}),
]
SAME = ("element_count", "unexpected_count", "missing_count", "partial_unexpected_counts")
CLOSE = ("observed_value", "unexpected_percent", "missing_percent", "unexpected_percent_total",
         "unexpected_percent_nonmissing")
BQ_ENGINE = "BigQuery SQL (GX result format)"


@pytest.fixture()
def bq_warehouse(bq, tmp_path, monkeypatch):
    """BigQuery (the emulator) as the warehouse, the transform's SQL file, and a spy on every read out of it."""
    client, prefix = bq
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", os.environ["AIRFLOW_CONN_BQ"])
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "orders_bq.sql").write_text(SQL)
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql_dir))
    read_out: list[str] = []
    arrow = BigQuerySession.arrow

    def spy(self, select_sql, params, *args, **kwargs):
        read_out.append(select_sql)
        return arrow(self, select_sql, params, *args, **kwargs)

    monkeypatch.setattr(BigQuerySession, "arrow", spy)
    return client, prefix, read_out


def pipeline(tmp_path: Path, prefix: str, validates: list[dict], extra=()) -> Path:
    return write(tmp_path, {"dag_id": "t_bq_validate", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "orders_bq", "kind": "transform", "sql": "orders_bq.sql", "inputs": ["extract_orders"],
         "target": {"schema": f"{prefix}_work", "table": "orders_bq"}},
        *validates, *extra]})


def validate(step_id: str, run_on: str, expectations, severity: str = "warn", **more) -> dict:
    return {"id": step_id, "kind": "validate", "input": "orders_bq", "run_on": run_on, **more,
            "expectations": [{"type": t, "kwargs": k, "severity": severity} for t, k in expectations]}


def report(data_home: Path, step: str) -> dict:
    return json.loads((data_home / f"reports/t_bq_validate/{step}/batch_date={D1}.json").read_text())


def close(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_checks_run_inside_bigquery_and_match_the_duckdb_path(tmp_path, data_home, bq_warehouse, caplog):
    client, prefix, read_out = bq_warehouse
    path = pipeline(tmp_path, prefix, [
        validate("check_in_bigquery", "warehouse", EXPECTATIONS,
                 quarantine={"schema": f"{prefix}_quarantine", "table": "orders"}),
        validate("check_in_duckdb", "batch", EXPECTATIONS)])
    with caplog.at_level(logging.INFO, logger="dagspec"):
        results = run(path, D1)
    assert results["check_in_bigquery"][D1.isoformat()]["success"] is True  # all warn: the run continues
    ours, theirs = report(data_home, "check_in_bigquery"), report(data_home, "check_in_duckdb")
    assert ours["meta"]["engine"] == BQ_ENGINE
    assert theirs["meta"]["engine"] == "DuckDB (GX result format)"
    assert ours["statistics"] == theirs["statistics"]
    assert len(ours["results"]) == len(EXPECTATIONS)
    for (kind, kwargs), a, b in zip(EXPECTATIONS, ours["results"], theirs["results"]):
        where = (kind, kwargs)
        assert a["success"] == b["success"], where
        assert a["expectation_config"] == b["expectation_config"], where
        assert a["exception_info"] == b["exception_info"] and not a["exception_info"]["raised_exception"], where
        ra, rb = a["result"], b["result"]
        assert set(ra) == set(rb), where
        for key in SAME:
            assert ra.get(key) == rb.get(key), (where, key, ra.get(key), rb.get(key))
        for key in CLOSE:
            assert close(ra.get(key), rb.get(key)), (where, key, ra.get(key), rb.get(key))
        if "partial_unexpected_list" in rb:
            # A sample of up to 20 rows: the whole list when there are no more, else any 20 of the unexpected.
            if rb["unexpected_count"] <= 20:
                assert Counter(map(json.dumps, ra["partial_unexpected_list"])) == Counter(
                    map(json.dumps, rb["partial_unexpected_list"])), where
            else:
                assert len(ra["partial_unexpected_list"]) == len(rb["partial_unexpected_list"]) == 20, where
    outcomes = [r["success"] for r in ours["results"]]
    assert outcomes.count(False) >= 9 and outcomes.count(True) >= 9
    by_kind = {(r["type"], json.dumps(r["expectation_config"]["kwargs"], sort_keys=True)): r["result"]
               for r in ours["results"]}
    nulls = by_kind[("expect_column_values_to_not_be_null", json.dumps({"column": "channel_or_null"}))]
    n_null = rows(client, f"SELECT COUNTIF(MOD(order_id, 50) = 0) FROM `dagspec-test.{prefix}_work.orders_bq`")[0][0]
    assert nulls["unexpected_count"] == n_null > 0
    assert by_kind[("expect_table_row_count_to_equal", json.dumps({"value": 400}))]["observed_value"] == 419

    # Nothing but the fallback's own columns left BigQuery for the warehouse step; the batch path read it all.
    assert sum(1 for s in read_out if s.startswith("SELECT * FROM")) == 1
    fallback = [s for s in read_out if not s.startswith("SELECT * FROM")]
    assert len(fallback) == 1 and fallback[0].startswith("SELECT `amount`, `channel` FROM (SELECT * EXCEPT")
    assert "@_dagspec_validate_batch_date" in fallback[0] and str(D1) not in fallback[0]
    logs = caplog.text
    assert f"validate check_in_bigquery batch_date={D1} rows=419 (engine: {BQ_ENGINE})" in logs
    assert "expectation(s) computed inside BigQuery" in logs and "the batch was not copied out" in logs
    assert ("expect_column_median_to_be_between, expect_column_distinct_values_to_be_in_set run by GX's pandas "
            "engine on column(s) amount, channel (only these are read from BigQuery)") in logs

    # Quarantine: the failing rows were selected into the quarantine table by a query inside BigQuery.
    assert "selected inside BigQuery" in logs
    quarantined = rows(client, f"SELECT order_id, failed_expectations, batch_date "
                               f"FROM `dagspec-test.{prefix}_quarantine.orders`")
    assert quarantined and all(f and b == D1 for _, f, b in quarantined)
    null_ids = {i for i, f, _ in quarantined if "expect_column_values_to_not_be_null(channel_or_null)" in f}
    assert len(null_ids) == n_null and all(i % 50 == 0 for i in null_ids)


def test_a_failing_fail_expectation_in_bigquery_stops_the_run_and_reads_nothing_out(tmp_path, data_home,
                                                                                    bq_warehouse):
    client, prefix, read_out = bq_warehouse
    checks = [("expect_column_values_to_not_be_null", {"column": "order_id"}),
              ("expect_column_values_to_be_unique", {"column": "order_id"}),
              ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 0, "max_value": 1000}),
              ("expect_column_values_to_be_between", {"column": "amount", "max_value": 100})]
    publish = {"id": "publish", "kind": "publish", "input": "orders_bq",
               "table": {"schema": f"{prefix}_mart", "table": "orders"}}
    path = pipeline(tmp_path, prefix, [validate("check", "warehouse", checks, severity="fail")], [publish])
    with pytest.raises(StepFailed, match=r"expect_column_values_to_be_between\(amount\)"):
        run(path, D1)
    got = report(data_home, "check")
    assert got["meta"]["engine"] == BQ_ENGINE
    assert [r["success"] for r in got["results"]] == [True, True, True, False]
    failed = got["results"][3]["result"]
    assert failed["unexpected_count"] > 0 and all(v > 100 for v in failed["partial_unexpected_list"])
    assert read_out == []  # not a row, not a column was streamed out of BigQuery
    mart = f"{prefix}_mart"
    assert mart not in {d.dataset_id for d in client.list_datasets()} or not list(client.list_tables(mart))

    # Within bounds, the same step passes and the publish runs.
    ok = pipeline(tmp_path, prefix, [validate("check", "warehouse", checks[:3], severity="fail")], [publish])
    run(ok, D1)
    assert rows(client, f"SELECT count(*) FROM `dagspec-test.{prefix}_mart.orders`") == [(419,)]


def test_drop_rows_inside_bigquery_publishes_only_the_passing_rows(tmp_path, data_home, bq_warehouse):
    """on_fail 'drop_rows' on BigQuery: the failing and the passing rows are each selected by a query there."""
    from support.expected import source_orders

    client, prefix, read_out = bq_warehouse
    amounts = [float(o[5]) for o in source_orders(data_home / "source.db", D1)]
    keep = sum(1 for a in amounts if a <= 100)
    check = validate("check", "warehouse", [("expect_column_values_to_be_between", {"column": "amount",
                                                                                   "max_value": 100})],
                     severity="fail", on_fail="drop_rows", quarantine={"schema": f"{prefix}_quarantine",
                                                                       "table": "orders"})
    publish = {"id": "publish", "kind": "publish", "input": "orders_bq",
               "table": {"schema": f"{prefix}_mart", "table": "orders"}}
    path = pipeline(tmp_path, prefix, [check], [publish])
    for _ in range(2):  # a re-run leaves the same rows, once
        got = run(path, D1)["check"][D1.isoformat()]
        assert (got["rows"], got["rows_passed"], got["rows_dropped"]) == (len(amounts), keep, len(amounts) - keep)
        assert rows(client, f"SELECT count(*), max(amount) <= 100 FROM `dagspec-test.{prefix}_mart.orders`") == [
            (keep, True)]
        assert rows(client, f"SELECT count(*), min(amount) > 100 FROM `dagspec-test.{prefix}_quarantine.orders`") == [
            (len(amounts) - keep, True)]
    assert 0 < keep < len(amounts)
    assert read_out == []  # the rows were selected inside BigQuery, never streamed out
