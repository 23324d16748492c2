"""Sub-daily batches in the warehouses: snapshot `keep` counts partitions (batch_start), not days; PostgreSQL's
merge and table materializations carry batch_start; a PostgreSQL `run_on: "warehouse"` check reads its interval's
rows only. Against the embedded DuckDB and a fresh PostgreSQL database (pg_db)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.warehouse_fixtures import pg_rows

from dagspec.connections import env_resolver
from dagspec.partitions import PartitionKey
from dagspec.warehouse import open_warehouse

DAY = datetime(2025, 3, 1, tzinfo=UTC)
HOURS = [PartitionKey.sub_daily(DAY + timedelta(hours=h)) for h in range(5)]
SNAPSHOT = "SELECT * FROM (VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')) AS c(customer_id, name)"


def session():
    return open_warehouse(env_resolver("dagspec_warehouse")).session()


def naive(key: PartitionKey) -> datetime:
    return key.utc_start.replace(tzinfo=None)


@pytest.mark.parametrize("keep", [1, 2])
def test_hourly_snapshots_keep_the_latest_partitions_not_the_latest_day(rows_of, keep):
    with session() as s:
        for key in HOURS:
            assert s.replace_batch("mart", "customers", key, SNAPSHOT, {}, keep=keep) == 3
    # every hour has the same batch_date: counting days would have kept all five
    assert rows_of("SELECT batch_start, count(*) FROM mart.customers GROUP BY 1 ORDER BY 1") == [
        (naive(k), 3) for k in HOURS[-keep:]]
    with session() as s:  # an older hour re-run is not among the newest: pruned again, the newest stay
        s.replace_batch("mart", "customers", HOURS[0], SNAPSHOT, {}, keep=keep)
    assert [r[0] for r in rows_of("SELECT DISTINCT batch_start FROM mart.customers ORDER BY 1")] == [
        naive(k) for k in HOURS[-keep:]]


def test_postgresql_merge_upserts_by_key_and_stamps_the_hour(pg_db):
    select = "SELECT * FROM (VALUES (1, %(v)s), (2, %(v)s)) AS t(id, v)"
    with session() as s:
        assert s.merge_batch("mart", "latest", HOURS[0], select, {"v": "a"}, key=["id"]) == 2
        assert s.merge_batch("mart", "latest", HOURS[1], "SELECT 2 AS id, 'b' AS v", {}, key=["id"]) == 1
    # id 2 moved to the 01:00 batch; id 1 stays in 00:00
    assert pg_rows(pg_db, "SELECT id, v, batch_date, batch_start FROM mart.latest ORDER BY id") == [
        (1, "a", DAY.date(), naive(HOURS[0])), (2, "b", DAY.date(), naive(HOURS[1]))]


def test_postgresql_table_materialization_has_the_batch_start(pg_db):
    with session() as s:
        s.replace_table("mart", "whole", HOURS[0], "SELECT 1 AS n", {})
        assert s.replace_table("mart", "whole", HOURS[3], "SELECT 2 AS n UNION ALL SELECT 3", {}) == 2
    assert pg_rows(pg_db, "SELECT n, batch_start FROM mart.whole ORDER BY n") == [
        (2, naive(HOURS[3])), (3, naive(HOURS[3]))]


def test_a_postgresql_warehouse_check_reads_its_interval_only(pg_db):
    from dagspec.checks.sql_engine import Evaluator
    from dagspec.checks.warehouse_sql import PostgresBatchConnection
    from dagspec.spec.suites import Check

    with session() as s:
        for n, key in enumerate(HOURS[:3]):
            s.replace_batch("mart", "events", key, f"SELECT g AS id FROM generate_series(1, {n + 2}) AS g", {})
        con = PostgresBatchConnection(s, "mart", "events", ["id"], HOURS[1])
        assert con.execute(f"SELECT count(*) FROM {con.relation}").fetchone() == (3,)
        check = Check("expect_column_max_to_be_between", {"column": "id", "min_value": 3, "max_value": 3})
        (result,) = Evaluator(con, con.relation).run([check])
        assert result["success"] and result["result"]["observed_value"] == 3
        assert "WHERE batch_start = " in con.statements[-1]


def test_an_hourly_run_on_warehouse_check_in_postgresql_judges_its_hour(data_home, pg_db):
    """The whole path: an hourly transform published to PostgreSQL, checked there by GX's SQL engine. The row
    count is its hour's channels; over the whole day's batch_date it would be both hours'."""
    from support.expected import orders_daily_as

    from dagspec.runner import run_step
    from dagspec.spec.model import Pipeline

    data = orders_daily_as("sdw_hourly", schedule="@hourly")
    data["steps"] = [data["steps"][0], {**data["steps"][3], "after": []}, {
        "id": "check_revenue", "kind": "validate", "input": "daily_revenue", "run_on": "warehouse",
        "expectations": [{"type": "expect_table_row_count_to_equal", "kwargs": {"value": 0}}]}]
    lo = DAY + timedelta(hours=12)
    for h in range(2):
        p = Pipeline.model_validate(data)
        for step in ("extract_orders", "daily_revenue"):
            run_step(p, step, lo + timedelta(hours=h), lo + timedelta(hours=h + 1))
    per_hour = pg_rows(pg_db, "SELECT batch_start, count(*) FROM dagspec_work.sdw_hourly__daily_revenue "
                              "GROUP BY 1 ORDER BY 1")
    assert [r[0] for r in per_hour] == [naive(PartitionKey.sub_daily(lo + timedelta(hours=h))) for h in range(2)]
    data["steps"][2]["expectations"][0]["kwargs"]["value"] = per_hour[1][1]
    p = Pipeline.model_validate(data)
    run_step(p, "check_revenue", lo + timedelta(hours=1), lo + timedelta(hours=2))
    import json

    report = json.loads((data_home / "reports/sdw_hourly/check_revenue/batch_date=2025-03-01/batch_time=1300.json")
                        .read_text())
    assert report["meta"]["engine"] == "great_expectations SQL engine in PostgreSQL"
    assert report["results"][0]["result"]["observed_value"] == per_hour[1][1]
