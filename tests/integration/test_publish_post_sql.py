"""Post-load SQL of a published table: run once the rows are in, inside the load's transaction, so a failing
statement leaves the batch as it was; templated with the batch and {{ this }}."""

from __future__ import annotations

import json
from datetime import date

import pytest

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.stages import StepFailed

DAY, NEXT = date(2025, 3, 1), date(2025, 3, 2)


def pipeline(tmp_path, post_sql: list[str], name: str = "t_post"):
    steps = [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": f"{name}_orders"}},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
         "table": {"schema": "mart", "table": "orders_pub", "post_sql": post_sql}},
    ]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"dag_id": name, "start_date": "2025-01-01", "steps": steps}))
    return load_definition(path)


def comment_sql(engine: str) -> str:
    if engine == "duckdb":
        return "SELECT comment FROM duckdb_tables() WHERE schema_name = 'mart' AND table_name = 'orders_pub'"
    return "SELECT obj_description('mart.orders_pub'::regclass)"


def test_post_sql_runs_after_the_load_with_the_batch_in_its_template(request, rows_of, tmp_path):
    engine = request.node.callspec.params["rows_of"]
    post = ["ANALYZE {{ this }}", "COMMENT ON TABLE {{ this }} IS 'batch {{ ds }} of {{ params.source }}'"]
    p = pipeline(tmp_path, post)
    p = p.model_copy(update={"params": {"source": "shop"}})
    run_pipeline(p, window_of_day(p, DAY))
    assert rows_of(comment_sql(engine)) == [("batch 2025-03-01 of shop",)]
    run_pipeline(p, window_of_day(p, NEXT))
    assert rows_of(comment_sql(engine)) == [("batch 2025-03-02 of shop",)]
    if engine == "postgres":  # ANALYZE really ran: the planner's statistics are there
        assert rows_of("SELECT count(*) FROM pg_stats WHERE schemaname = 'mart' AND tablename = 'orders_pub'")[0][0] > 0


def test_a_failing_post_statement_leaves_the_batch_as_it_was(request, rows_of, tmp_path):
    good = pipeline(tmp_path, ["COMMENT ON TABLE {{ this }} IS 'ok'"])
    run_pipeline(good, window_of_day(good, DAY))
    before = rows_of("SELECT batch_date, count(*) FROM mart.orders_pub GROUP BY 1 ORDER BY 1")
    bad = pipeline(tmp_path, ["COMMENT ON TABLE {{ this }} IS 'ok'", "GRANT SELECT ON {{ this }} TO no_such_role_x"],
                   name="t_post_bad")
    for day in (DAY, NEXT):  # a re-run of a loaded day, and a new day
        with pytest.raises(StepFailed) as info:
            run_pipeline(bad, window_of_day(bad, day))
        assert "nothing of this batch was published" in str(info.value)
        assert "2 post_sql statement(s)" in str(info.value)
    assert rows_of("SELECT batch_date, count(*) FROM mart.orders_pub GROUP BY 1 ORDER BY 1") == before


def test_grants_reach_postgres(pg_db, tmp_path, data_home):
    import psycopg
    from support.warehouse_fixtures import pg_rows

    with psycopg.connect(dbname="postgres", host="127.0.0.1", user="postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'dagspec_reporting'").fetchall():
            admin.execute("CREATE ROLE dagspec_reporting NOLOGIN")
    p = pipeline(tmp_path, ["GRANT SELECT ON {{ this }} TO dagspec_reporting", "ANALYZE {{ this }}"])
    run_pipeline(p, window_of_day(p, DAY))
    assert pg_rows(pg_db, "SELECT has_table_privilege('dagspec_reporting', 'mart.orders_pub', 'SELECT')") == [(True,)]
    assert pg_rows(pg_db, "SELECT has_table_privilege('dagspec_reporting', 'mart.orders_pub', 'DELETE')") == [(False,)]
