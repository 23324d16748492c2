"""Redshift (PostgreSQL answering through the stand-in): run_on 'warehouse' checks computed in Redshift SQL with
GX's results as the DuckDB path gives them, and post-load SQL inside the load's transaction. Every statement
is parsed by sqlglot's Redshift dialect. Not run: a real cluster (see the README's Redshift section)."""

from __future__ import annotations

import json
import logging
from datetime import date
from pathlib import Path

import pytest
import sqlglot
from support.redshift_standin import POSTGRES_ONLY, statements
from support.warehouse_fixtures import pg_rows

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.stages import StepFailed
from dagspec.warehouse.redshift_sql import redshift_problem

pytestmark = pytest.mark.service
DAY = date(2025, 3, 1)
EXPECTATIONS = [
    ("expect_column_values_to_not_be_null", {"column": "order_id"}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 490}),
    ("expect_column_values_to_be_between", {"column": "amount", "min_value": 0, "max_value": 490, "mostly": 0.9}),
    ("expect_column_values_to_be_in_set", {"column": "status", "value_set": ["placed", "shipped", "delivered"]}),
    ("expect_column_values_to_be_unique", {"column": "order_id"}),
    ("expect_column_values_to_be_unique", {"column": "customer_id"}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["customer_id", "channel"]}),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_value": 10_000}),
    ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 0, "max_value": 100}),
    ("expect_column_stdev_to_be_between", {"column": "amount", "min_value": 0}),
    ("expect_column_unique_value_count_to_be_between", {"column": "status", "min_value": 1, "max_value": 4}),
    ("expect_column_value_lengths_to_be_between", {"column": "channel", "min_value": 3, "max_value": 6}),
    # Not computed by the SQL evaluator: GX's pandas engine on that column, read out through UNLOAD.
    ("expect_column_distinct_values_to_be_in_set", {"column": "channel", "value_set": ["web", "mobile", "store"]}),
]
SAME = ("element_count", "unexpected_count", "missing_count", "observed_value")


def write(tmp_path: Path, steps: list[dict], name: str = "t_rs") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"dag_id": name, "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": f"{name}_orders"}}, *steps]}))
    return path


def run(path: Path, day: date = DAY):
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def check(step_id: str, run_on: str, **more) -> dict:
    return {"id": step_id, "kind": "validate", "input": "orders_rs", "run_on": run_on, **more,
            "expectations": [{"type": t, "kwargs": k, "severity": "warn"} for t, k in EXPECTATIONS]}


def parses_as_redshift(sql: str) -> None:
    assert not any(word in sql for word in POSTGRES_ONLY), sql
    bound = sql.replace("%(", "'").replace(")s", "'")  # a bound parameter is a value: any literal stands for it
    assert [s for s in sqlglot.parse(bound, read="redshift") if s is not None], sql


def test_warehouse_checks_run_in_redshift_sql_and_match_the_duckdb_path(tmp_path, data_home, redshift_wh, caplog):
    path = write(tmp_path, [
        {"id": "orders_rs", "kind": "transform", "query": "SELECT order_id, customer_id, status, channel, amount "
         "FROM {{ ref('extract_orders') }}", "inputs": ["extract_orders"]},
        check("in_redshift", "warehouse", quarantine={"schema": "quarantine", "table": "rs_orders"}),
        check("in_duckdb", "batch", quarantine={"schema": "quarantine", "table": "duck_orders"})])
    with caplog.at_level(logging.INFO, logger="dagspec"):
        run(path)
    folder = data_home / "reports/t_rs"
    ours = json.loads((folder / f"in_redshift/batch_date={DAY}.json").read_text())
    theirs = json.loads((folder / f"in_duckdb/batch_date={DAY}.json").read_text())
    assert ours["meta"]["engine"] == "Redshift SQL (GX result format)"
    assert ours["statistics"] == theirs["statistics"]
    for (kind, kwargs), a, b in zip(EXPECTATIONS, ours["results"], theirs["results"]):
        assert a["success"] == b["success"], (kind, kwargs)
        assert not a["exception_info"]["raised_exception"], (kind, a["exception_info"])
        for key in SAME:
            got, want = a["result"].get(key), b["result"].get(key)
            assert got == pytest.approx(want) if isinstance(want, float) else got == want, (kind, key)
    assert [r["success"] for r in ours["results"]].count(False) >= 3
    assert "computed inside Redshift in" in caplog.text
    # Quarantine selected in Redshift SQL holds exactly the rows, and the checks they failed, that DuckDB found.
    quarantined = [pg_rows(redshift_wh["db"], f"SELECT order_id, failed_expectations FROM quarantine.{t} ORDER BY 1")
                   for t in ("rs_orders", "duck_orders")]
    assert quarantined[0] == quarantined[1] and len(quarantined[0]) > 50
    sent = statements(redshift_wh)
    assert any("stddev_samp" in s.lower() or "stddev" in s.lower() for s in sent)
    for sql in sent:
        parses_as_redshift(sql)


def publish(post_sql: list[str]) -> list[dict]:
    return [{"id": "publish_orders", "kind": "publish", "input": "extract_orders",
             "table": {"schema": "mart", "table": "rs_pub", "post_sql": post_sql}}]


def test_post_sql_runs_inside_the_redshift_load_transaction(tmp_path, data_home, redshift_wh):
    db = redshift_wh["db"]
    run(write(tmp_path, publish(["ANALYZE {{ this }}", "COMMENT ON TABLE {{ this }} IS 'batch {{ ds }}'"])))
    assert pg_rows(db, "SELECT obj_description('mart.rs_pub'::regclass)") == [(f"batch {DAY}",)]
    sent = statements(redshift_wh)
    load = next(i for i, s in enumerate(sent) if s.startswith('INSERT INTO "mart"."rs_pub"'))
    after = [s for s in sent[load + 1:] if s.startswith(("ANALYZE", "COMMENT"))]
    # The two post_sql statements (in the load's transaction), then dagspec's own ANALYZE after it.
    assert after == ['ANALYZE "mart"."rs_pub"', f"COMMENT ON TABLE \"mart\".\"rs_pub\" IS 'batch {DAY}'",
                     'ANALYZE "mart"."rs_pub"']
    for sql in sent:
        parses_as_redshift(sql)
    before = pg_rows(db, "SELECT batch_date, count(*) FROM mart.rs_pub GROUP BY 1")
    bad = write(tmp_path, publish(["COMMENT ON TABLE {{ this }} IS 'late'", "GRANT SELECT ON {{ this }} TO no_role_l15"]),
                name="t_rs_bad")
    for day in (DAY, date(2025, 3, 2)):  # a re-run of a loaded day, and a new one: both roll back whole
        with pytest.raises(StepFailed, match="nothing of this batch was published"):
            run(bad, day)
    assert pg_rows(db, "SELECT batch_date, count(*) FROM mart.rs_pub GROUP BY 1") == before
    assert pg_rows(db, "SELECT obj_description('mart.rs_pub'::regclass)") == [(f"batch {DAY}",)]


def test_post_sql_sqlglot_cannot_read_as_redshift_is_refused_before_the_load():
    assert redshift_problem('GRANT SELECT ON "mart"."t" TO reporting') is None
    assert redshift_problem('ALTER TABLE "mart"."t" OWNER TO etl') is None
    assert "cannot read it" in redshift_problem("GRANT SELECT ON ( TO x")
    assert "2 statements" in redshift_problem('ANALYZE "mart"."t"; DROP TABLE x')
