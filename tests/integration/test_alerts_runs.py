"""success, warn and stale alerts over real protocols (aiosmtpd and an HTTP sink on loopback).

success: once per `dagspec backfill --local` (every date in it) and once per Airflow run (the DAG's
on_success_callback, through dag.test), with the rows each publish step loaded. warn: one alert per validate
step naming each failed warn check and what it saw. stale: the scheduled check alerts on a change of state
only, says when a table is fresh again, and tries again when no channel took the alert.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from support.day_runs import run_day, write_definition
from support.expected import source_orders

from dagspec.freshness_alerts import run_freshness_check
from dagspec.spec.model import Pipeline
from dagspec.store import Store

D1, D2 = date(2025, 3, 1), date(2025, 3, 2)
EXTRACT = {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
           "target": {"schema": "raw", "table": "orders"}}


def channels(smtp, hook, monkeypatch, on: list[str]) -> dict:
    monkeypatch.setenv("AIRFLOW_CONN_RUN_MAIL", f"smtp://127.0.0.1:{smtp.port}/?from_email=dagspec%40example.com")
    monkeypatch.setenv("AIRFLOW_CONN_RUN_HOOK", f"http://127.0.0.1:{hook.port}/services/T1/B1/runs")
    return {"email": ["data@example.com"], "smtp_conn_id": "run_mail", "webhook_conn_id": "run_hook", "on": on}


def publishing(table: str = "orders") -> list[dict]:
    """An extract and a publish (a table and a CSV export); `table` keeps them apart from the example's."""
    return [{**EXTRACT, "target": {"schema": "raw", "table": table}},
            {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
             "table": {"schema": "analytics", "table": table}, "export": {"format": "csv"}}]


def test_a_local_backfill_sends_one_success_alert_naming_its_dates_and_rows(tmp_path, data_home, smtp, hook,
                                                                           monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    alerts = channels(smtp, hook, monkeypatch, ["success"])
    write_definition(tmp_path, "ok_runs", publishing(), alerts=alerts)
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(tmp_path))
    result = CliRunner().invoke(app, ["backfill", "ok_runs", "--from", "2025-03-01", "--to", "2025-03-02", "--local"])
    assert result.exit_code == 0, result.output

    (rcpts, msg), = smtp.messages  # one for the command, not one per date
    assert rcpts == ["data@example.com"]
    assert msg["Subject"] == "[dagspec] ok_runs succeeded for 2025-03-01 .. 2025-03-02 (2 dates)"
    body = msg.get_content()
    for day in (D1, D2):
        n = len(source_orders(data_home / "source.db", day))
        assert n > 100
        assert (f"- publish_orders {day}: table analytics.orders {n:,} rows, csv export analytics.orders {n:,} rows"
                in body), body
    (path, payload), = hook.posts
    assert path == "/services/T1/B1/runs" and payload["text"].startswith(":large_green_circle: [dagspec] ok_runs succ")
    assert f"publish_orders {D2}: table analytics.orders" in json.dumps(payload)


def test_no_success_alert_when_a_date_fails_and_none_unless_asked(tmp_path, data_home, smtp, hook, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    alerts = channels(smtp, hook, monkeypatch, ["failure"])
    write_definition(tmp_path, "quiet_runs", publishing(), alerts=alerts)
    bad = {**EXTRACT, "source": {"table": "no_such_table", "incremental_column": "ordered_at"},
           "target": {"schema": "raw", "table": "missing"}}
    noisy = channels(smtp, hook, monkeypatch, ["success"])
    write_definition(tmp_path, "bad_runs", [bad], alerts=noisy)
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(tmp_path))
    ok = CliRunner().invoke(app, ["run", "quiet_runs", "--date", "2025-03-01"])
    assert ok.exit_code == 0, ok.output
    assert CliRunner().invoke(app, ["run", "bad_runs", "--date", "2025-03-01"]).exit_code != 0
    assert smtp.messages == [] and hook.posts == []


def _warn_steps(severity: str = "warn") -> list[dict]:
    return [EXTRACT, {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "channel", "value_set": ["web"]},
         "severity": severity},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "amount", "max_value": 1},
         "severity": "warn"}]}]


def test_failed_warn_checks_send_one_alert_with_their_observed_values_and_report(tmp_path, data_home, smtp, hook,
                                                                                monkeypatch):
    alerts = channels(smtp, hook, monkeypatch, ["warn"])
    results = run_day(write_definition(tmp_path, "warned", _warn_steps(), alerts=alerts), D1)
    assert results["check_orders"][D1.isoformat()]["warnings"] == 2

    orders = source_orders(data_home / "source.db", D1)
    not_web = sum(1 for o in orders if o[4] != "web")
    top = max(o[5] for o in orders)
    (_, msg), = smtp.messages
    assert msg["Subject"] == "[dagspec] warned.check_orders 2 warn check(s) failed for 2025-03-01"
    body = msg.get_content()
    assert f"- expect_column_values_to_be_in_set(channel) batch_date=2025-03-01: {not_web:,} unexpected (" in body
    assert f"- expect_column_max_to_be_between(amount) batch_date=2025-03-01: observed {float(top)}" in body, body
    assert "expect_column_values_to_not_be_null" not in body  # it passed
    link = body.split("Validation report: ", 1)[1].strip()
    assert link.endswith(".html") and link.startswith("file://")
    (_, payload), = hook.posts
    assert "expect_column_max_to_be_between(amount)" in json.dumps(payload)


def test_a_failing_fail_check_sends_no_warn_alert(tmp_path, data_home, smtp, hook, monkeypatch):
    from dagspec.stages import StepFailed

    alerts = channels(smtp, hook, monkeypatch, ["warn"])
    with pytest.raises(StepFailed, match="validation failed"):
        run_day(write_definition(tmp_path, "stopped", _warn_steps("fail"), alerts=alerts), D1)
    assert smtp.messages == [] and hook.posts == []


# ---------------------------------------------------------------- stale


def _fresh_pipeline(alerts: dict) -> Pipeline:
    return Pipeline.model_validate({
        "dag_id": "fresh_alerts", "start_date": "2025-01-01", "alerts": alerts,
        "freshness": {"max_age_hours": 24, "schedule": "0 * * * *"}, "steps": [EXTRACT]})


def _write(store: Store, day: date, rows: int = 3) -> None:
    data = pa.table({"x": list(range(rows))})
    store.write_partition("raw", "orders", day, data.schema, data.to_batches())


def test_stale_alerts_on_a_change_of_state_only_then_says_fresh_again(data_home, smtp, hook, monkeypatch):
    pipeline = _fresh_pipeline(channels(smtp, hook, monkeypatch, ["stale"]))
    store = Store(data_home / "store")
    _write(store, D1)
    at = datetime(2025, 3, 4, 6, tzinfo=UTC)  # D1's data ended 2025-03-02 00:00: 54 h old
    first = run_freshness_check(pipeline, now=at)
    assert first.alerted == ["raw.orders"] and first.delivered == {"stale": {"email": True, "webhook": True}}
    assert run_freshness_check(pipeline, now=at + timedelta(hours=1)).alerted == []
    assert len(smtp.messages) == 1 and len(hook.posts) == 1
    msg = smtp.messages[0][1]
    assert msg["Subject"] == "[dagspec] fresh_alerts 1 table(s) stale at 2025-03-04 06:00 UTC"
    assert "- raw.orders: newest partition 2025-03-01 is 54.0 h old, older than the 24 h allowed" in msg.get_content()

    _write(store, D2)  # a newer partition, still too old: a new state, alerted again
    assert run_freshness_check(pipeline, now=at + timedelta(hours=2)).alerted == ["raw.orders"]
    _write(store, date(2025, 3, 4))
    back = run_freshness_check(pipeline, now=at + timedelta(hours=3))
    assert back.alerted == [] and back.recovered == ["raw.orders"]
    assert [m["Subject"] for _, m in smtp.messages][1:] == [
        "[dagspec] fresh_alerts 1 table(s) stale at 2025-03-04 08:00 UTC",
        "[dagspec] fresh_alerts 1 table(s) fresh again at 2025-03-04 09:00 UTC"]
    assert run_freshness_check(pipeline, now=at + timedelta(hours=4)).recovered == []
    assert len(smtp.messages) == 3


def test_a_stale_alert_no_channel_took_is_sent_again_next_run(data_home, smtp, hook, monkeypatch, caplog):
    alerts = channels(smtp, hook, monkeypatch, ["stale"])
    monkeypatch.setenv("AIRFLOW_CONN_RUN_MAIL", "smtp://127.0.0.1:1/")  # nothing listens there
    pipeline = _fresh_pipeline({**alerts, "webhook_conn_id": None})
    at = datetime(2025, 3, 4, 6, tzinfo=UTC)
    assert run_freshness_check(pipeline, now=at).delivered == {"stale": {"email": False}}
    assert "alert email for fresh_alerts" in caplog.text and "not sent" in caplog.text
    monkeypatch.setenv("AIRFLOW_CONN_RUN_MAIL", f"smtp://127.0.0.1:{smtp.port}/")
    assert run_freshness_check(pipeline, now=at).alerted == ["raw.orders"]
    assert "no staged partition" in smtp.messages[0][1].get_content()


# ---------------------------------------------------------------- through Airflow


@pytest.mark.e2e
def test_freshness_dag_alerts_once_over_two_stale_runs_and_success_alert_once_per_run(
        airflow_db, dags_folder, data_home, smtp, hook, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    alerts = channels(smtp, hook, monkeypatch, ["stale", "success"])
    (dags_folder / "definitions" / "watched.json").write_text(json.dumps({
        "dag_id": "watched", "start_date": "2025-01-01", "alerts": alerts,
        "freshness": {"max_age_hours": 24, "schedule": "@hourly"}, "steps": publishing("watched")}))
    bag = DagBag(dag_folder=str(dags_folder))
    assert not [e for f, e in bag.import_errors.items() if "watched" in f], bag.import_errors
    assert "watched__freshness" in bag.dags, sorted(bag.dags)
    fresh_dag, dag = bag.dags["watched__freshness"], bag.dags["watched"]
    assert [t.task_id for t in fresh_dag.tasks] == ["check_freshness"] and dag.on_success_callback

    run = dag.test(logical_date=datetime(2025, 3, 2, tzinfo=UTC))  # data interval 2025-03-01 .. 2025-03-02
    assert str(run.state) == "success"
    (_, msg), = smtp.messages
    n = len(source_orders(data_home / "source.db", D1))
    assert msg["Subject"] == "[dagspec] watched succeeded for 2025-03-01"
    body = msg.get_content()
    assert f"- publish_orders 2025-03-01: table analytics.watched {n:,} rows, csv export analytics.watched {n:,} rows" \
        in body, body
    assert "/dags/watched/runs/" in body

    for hour in (1, 2):  # the 2025-03-01 partition stays the newest: stale on both runs, alerted once
        assert str(fresh_dag.test(logical_date=datetime(2026, 1, 1, hour, tzinfo=UTC)).state) == "success"
    stale = [m for _, m in smtp.messages if "stale" in m["Subject"]]
    assert [m["Subject"].split(" at ")[0] for m in stale] == ["[dagspec] watched 2 table(s) stale"]
    text = stale[0].get_content()
    assert "- raw.watched: newest partition 2025-03-01 is" in text and "- analytics.watched: newest partition" in text
    assert len(hook.posts) == 2  # the success and the one stale alert


def test_the_freshness_command_alerts_too_with_the_same_dedupe(tmp_path, data_home, smtp, hook, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    alerts = channels(smtp, hook, monkeypatch, ["stale"])
    spec = _fresh_pipeline(alerts).model_dump(by_alias=True, exclude_none=True, mode="json")
    (tmp_path / "fresh_alerts.json").write_text(json.dumps(spec))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(tmp_path))
    for _ in range(2):
        result = CliRunner().invoke(app, ["freshness", "fresh_alerts", "--alert"])
        assert result.exit_code == 1 and "stale" in result.output, result.output
    assert len(smtp.messages) == 1 and "raw.orders: no staged partition" in smtp.messages[0][1].get_content()
    assert CliRunner().invoke(app, ["freshness", "--alert", "--max-age-hours", "3"]).exit_code == 2
