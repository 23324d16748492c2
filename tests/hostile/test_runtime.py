"""Hostile run-time conditions: a host that is not in UTC, a full disk, connections that run out.

Each test names the defect of issue 12 it guards (4: time zone, 8: errors hiding their cause,
9: connections leaking across dates). Fixtures and helpers: tests/support/runtime_conditions.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from support.runtime_conditions import (
    EVENTS,
    ROOT,
    enospc,
    extract_big,
    pg_admin,
    sessions,
    staged_under,
    tiny_disk,
    warehouse_on,
)

from dagspec.errors import StepFailed
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec.model import Pipeline


def test_every_source_stages_the_same_values_whatever_the_hosts_time_zone(tz_sources, tmp_path):
    """Defect 4: under TZ=Europe/Berlin a PostgreSQL extract of a timestamptz column failed (DuckDB's session
    rendered it in the host's zone); every source session must run in UTC."""
    utc = staged_under("UTC", tz_sources, tmp_path / "utc")
    warehouse = utc.pop("warehouse")
    assert [(r["id"], r["hour"], r["day"]) for r in warehouse] == [
        ("2", "0", "datetime.date(2025, 3, 1)"), ("3", "23", "datetime.date(2025, 3, 2)"),
        ("4", "0", "datetime.date(2025, 3, 3)"), ("5", "4", "datetime.date(2025, 3, 3)")], warehouse
    for case, staged in utc.items():  # the reference itself is right: rows 2..5 in two batches, in UTC
        assert sorted(staged) == ["2025-03-01", "2025-03-03"], case
        ids = [[int(r["id"]) for r in staged[d]["rows"]] for d in sorted(staged)]
        assert ids == [[2, 3], [4, 5]], (case, ids)
        assert any("tz=UTC" in f for f in staged["2025-03-01"]["schema"]) or case.startswith("my_scanner"), case
    for tz in ("Europe/Berlin", "America/New_York"):
        got = staged_under(tz, tz_sources, tmp_path / tz.replace("/", "_"))
        assert got.pop("warehouse") == warehouse, f"TZ={tz}: the DuckDB warehouse's transform differs"
        for case in utc:
            assert got[case] == utc[case], f"TZ={tz} {case}: {got[case]} != {utc[case]}"


# ---------------------------------------------------------------- defect 9: connections across dates


CHECKED_IN_POSTGRES = [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "orders", "min_value": 1, "max_value": 100000}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "channel"}},
]


def revenue_checked_in_postgres(expectations=CHECKED_IN_POSTGRES) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "ds_leak", "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        {"id": "check_revenue", "kind": "validate", "input": "daily_revenue", "run_on": "warehouse",
         "expectations": expectations}]})


def test_connections_stay_flat_over_a_200_date_run(data_home, pg_db):
    """Before: each date left GX's two engines (and their pools) open until garbage collection; 130 dates
    held 98 of PostgreSQL's 100 connections."""
    pipeline = revenue_checked_in_postgres()
    before = sessions(pg_db)
    counts = []
    for i in range(200):
        run_pipeline(pipeline, window_of_day(pipeline, date(2025, 1, 1) + timedelta(days=i)))
        counts.append(sessions(pg_db))
    assert max(counts) == before == 0, counts


@pytest.mark.parametrize("limit", [1, 2], ids=["at-connect", "while-computing"])
def test_too_many_clients_while_checking_is_an_error_of_the_run_not_a_failed_expectation(data_home, pg_db,
                                                                                          monkeypatch, limit):
    """The role may hold `limit` connections: with 1 (the step's own session has it) GX cannot connect at all;
    with 2 its connection test passes and its execution engine's own pool then fails while computing metrics,
    where GX puts the exception in each result's exception_info with success false: that was recorded as a
    validation failure. Both must fail the task naming the connection."""
    from dagspec.runner import run_step
    from dagspec.stages.validate import ValidationFailed

    pipeline = revenue_checked_in_postgres()
    window = window_of_day(pipeline, date(2025, 3, 1))
    run_pipeline(pipeline, window)  # as postgres: passes
    role = f"ds_one_{uuid.uuid4().hex[:8]}"
    with pg_admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}")
    with pg_admin(pg_db) as c:
        c.execute(f"GRANT USAGE ON SCHEMA dagspec_work TO {role}")
        c.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA dagspec_work TO {role}")
    try:
        monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", f"postgres://{role}@127.0.0.1:5432/{pg_db}")
        with pytest.raises(StepFailed) as err:
            run_step(pipeline, "check_revenue", window.start, window.end)
        assert not isinstance(err.value, ValidationFailed), err.value
        message = str(err.value)
        assert "'dagspec_warehouse'" in message and "not a failed expectation" in message, message
        assert "too many connections" in message, message
    finally:
        with pg_admin(pg_db) as c:
            c.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            c.execute(f"DROP OWNED BY {role}")
        with pg_admin() as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_column_missing_in_the_warehouse_is_an_error_not_a_failed_expectation(data_home, pg_db):
    from dagspec.stages.validate import ValidationFailed

    pipeline = revenue_checked_in_postgres([
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}}])
    with pytest.raises(StepFailed) as err:
        run_pipeline(pipeline, window_of_day(pipeline, date(2025, 3, 1)))
    assert not isinstance(err.value, ValidationFailed), err.value
    message = str(err.value)
    assert "'dagspec_warehouse'" in message and "no_such_column" in message, message
    assert sessions(pg_db) == 0


# ---------------------------------------------------------------- defect 8: a full disk names itself


def test_a_full_store_is_named_as_the_store_not_the_source(data_home, tmp_path, monkeypatch, big_duckdb_source):
    """Before: 'source connection ... No space left on device' sent people to look at the source database."""
    from dagspec.store import Store

    with tiny_disk(tmp_path / "full") as disk:
        folder = (disk or tmp_path) / "store"
        monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_STORE", json.dumps({"conn_type": "fs", "extra": {"path": str(folder)}}))
        if disk is None:  # no tmpfs here: the store's write fails as a full disk does
            import dagspec.store

            monkeypatch.setattr(dagspec.store, "_swap_in", enospc)
        pipeline = extract_big(big_duckdb_source)
        with pytest.raises(StepFailed) as err:
            run_pipeline(pipeline, window_of_day(pipeline, date(2025, 3, 1)))
        message = str(err.value)
        assert "No space left on device" in message, message
        assert message.startswith("store connection 'dagspec_store'") and "source connection" not in message, message
        assert Store(folder).batch_dates("raw", "big") == []


def test_a_full_warehouse_keeps_no_space_left_and_not_the_failed_rollback(data_home, tmp_path, monkeypatch,
                                                                          big_duckdb_source):
    """DuckDB's failed COMMIT ends the transaction; the ROLLBACK after it then raised 'cannot rollback - no
    transaction is active', which replaced the cause."""
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "copy.sql").write_text("SELECT * FROM {{ ref('extract') }}")
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql))
    pipeline = extract_big(big_duckdb_source, [
        {"id": "copy", "kind": "transform", "sql": "copy.sql", "inputs": ["extract"],
         "target": {"schema": "analytics", "table": "big"}}])
    window = window_of_day(pipeline, date(2025, 3, 1))
    from dagspec.runner import run_step

    run_step(pipeline, "extract", window.start, window.end)
    with tiny_disk(tmp_path / "full") as disk:
        warehouse_on(disk, tmp_path, monkeypatch)
        with pytest.raises(StepFailed) as err:
            run_step(pipeline, "copy", window.start, window.end)
        message = str(err.value)
        assert "No space left on device" in message and "cannot rollback" not in message, message
        assert "in the warehouse" in message and "analytics.big is unchanged" in message, message


@pytest.mark.parametrize("target", ["table", "export"])
def test_publishing_onto_a_full_disk_names_that_target(data_home, tmp_path, monkeypatch, big_duckdb_source, target):
    from dagspec.runner import run_step

    with tiny_disk(tmp_path / "full") as disk:
        publish = {"id": "publish", "kind": "publish", "input": "extract"}
        if target == "table":
            publish["table"] = {"schema": "analytics", "table": "big"}
        else:
            publish["export"] = {"format": "parquet", "conn_id": "ds_full_lake",
                                 "target": {"schema": "lake", "table": "big"}}
            monkeypatch.setenv("AIRFLOW_CONN_DS_FULL_LAKE",
                               json.dumps({"conn_type": "fs", "extra": {"path": str((disk or tmp_path) / "lake")}}))
        pipeline = extract_big(big_duckdb_source, [publish])
        window = window_of_day(pipeline, date(2025, 3, 1))
        run_step(pipeline, "extract", window.start, window.end)  # into the store on the ordinary disk
        if target == "table":
            warehouse_on(disk, tmp_path, monkeypatch)
        elif disk is None:
            import dagspec.store

            monkeypatch.setattr(dagspec.store, "_swap_in", enospc)
        with pytest.raises(StepFailed) as err:
            run_step(pipeline, "publish", window.start, window.end)
        message = str(err.value)
        named = "warehouse connection 'dagspec_warehouse'" if target == "table" else "store connection 'ds_full_lake'"
        assert message.startswith(f"publish publish: {named}") and "No space left on device" in message, message
        assert "cannot rollback" not in message, message


def test_a_postgres_warehouse_session_is_utc_even_when_the_database_says_otherwise(data_home, tmp_path, pg_db,
                                                                                   monkeypatch):
    """The host's TZ never reaches libpq, but a database's (or role's) TimeZone default does: the session's
    own options override both."""
    import duckdb
    from support.warehouse_fixtures import pg_rows

    from dagspec.runner import run_step

    source = tmp_path / "events.duckdb"
    con = duckdb.connect(str(source))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMPTZ)")
    con.execute("INSERT INTO events VALUES " + ", ".join(f"({i}, TIMESTAMPTZ '{t}+00')" for i, t in EVENTS))
    con.close()
    monkeypatch.setenv("AIRFLOW_CONN_DS_TZ_EVENTS", json.dumps({"conn_type": "duckdb", "host": str(source)}))
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "tz.sql").write_text("SELECT id, CAST(ts AS DATE) AS day, CAST(EXTRACT(hour FROM ts) AS INTEGER) AS hour "
                                "FROM {{ ref('extract') }}")
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql))
    with pg_admin() as admin:
        admin.execute(f"ALTER DATABASE {pg_db} SET TimeZone = 'Asia/Tokyo'")
    pipeline = Pipeline.model_validate({"dag_id": "ds_tz_wh", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"conn_id": "ds_tz_events", "table": "events"},
         "target": {"schema": "raw", "table": "events"}},
        {"id": "tz", "kind": "transform", "sql": "tz.sql", "inputs": ["extract"],
         "target": {"schema": "analytics", "table": "tz"}}]})
    window = window_of_day(pipeline, date(2025, 3, 2))
    run_step(pipeline, "extract", window.start, window.end)
    run_step(pipeline, "tz", window.start, window.end)
    assert pg_rows(pg_db, "SELECT id, day::text, hour FROM analytics.tz ORDER BY id") == [
        (1, "2025-02-28", 23), (2, "2025-03-01", 0), (3, "2025-03-02", 23), (4, "2025-03-03", 0),
        (5, "2025-03-03", 4), (6, "2025-03-04", 0)]


def test_an_error_quoting_rich_markup_is_printed_as_text(data_home, tmp_path):
    """`dagspec run` printed each failure through Rich markup: an error quoting '[/]' (a table name, a value,
    a password's characters) raised MarkupError instead of showing the failure."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "ds_markup.json").write_text(json.dumps({
        "dag_id": "ds_markup", "start_date": "2025-01-01", "schedule": "@daily",
        "steps": [{"id": "extract", "kind": "extract", "source": {"query": 'SELECT * FROM "[/]" WHERE :from_date < 1'},
                   "target": {"schema": "raw", "table": "t"}}]}))
    env = {**os.environ, "DAGSPEC_HOME": str(data_home), "DAGSPEC_DEFINITIONS": str(folder), "COLUMNS": "10000"}
    done = subprocess.run([str(Path(sys.executable).with_name("dagspec")), "run", "ds_markup", "--date", "2025-03-01"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "MarkupError" not in output, output[-3000:]
    assert "ds_markup 2025-03-01: failed: source connection 'dagspec_source'" in output, output[-3000:]
    assert "no such table: [/]" in output, output[-3000:]


def test_backfill_prints_an_api_servers_text_as_text_not_markup(monkeypatch, tmp_path):
    """An api-server URL (or an error it sends back) holding '[/]' is text: Rich markup would crash on it."""
    from typer.testing import CliRunner

    from dagspec.cli import app

    monkeypatch.setenv("DAGSPEC_AIRFLOW_PASSWORD", "x")
    result = CliRunner().invoke(app, ["backfill", "orders_daily", "--from", "2025-03-01", "--to", "2025-03-01",
                                      "--url", "http://127.0.0.1:9/[/]not-markup"])
    assert result.exit_code == 2, result.output
    assert "[/]not-markup" in result.output and "MarkupError" not in result.output
