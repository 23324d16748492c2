"""The new alert kinds and freshness.schedule in the definition, and which DAGs a loader builds for them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dagspec.alerts import AlertEvent, email_message
from dagspec.spec.model import Alerts, Pipeline

EXTRACT = {"id": "e", "kind": "extract", "source": {"table": "orders"}, "target": {"schema": "raw", "table": "o"}}


def pipeline(**fields) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "p", "start_date": "2025-01-01", "steps": [EXTRACT], **fields})


def test_freshness_schedule_takes_presets_and_hourly_crons_and_names_a_bad_one():
    assert pipeline(freshness={"max_age_hours": 2, "schedule": "*/30 * * * *"}).freshness.schedule == "*/30 * * * *"
    assert pipeline(freshness={"max_age_hours": 2, "schedule": "@hourly"}).freshness.schedule == "@hourly"
    with pytest.raises(ValidationError, match="unknown preset '@often'"):
        pipeline(freshness={"max_age_hours": 2, "schedule": "@often"})
    with pytest.raises(ValidationError, match="not a valid cron expression"):
        pipeline(freshness={"max_age_hours": 2, "schedule": "61 * * * *"})
    with pytest.raises(ValidationError, match="shorten dag_id"):
        pipeline(dag_id="d" * 245, freshness={"max_age_hours": 2, "schedule": "@daily"})


def test_alert_kinds_need_a_channel_and_a_wrong_kind_is_refused():
    assert Alerts(email=["a@example.com"], on=["success", "warn", "stale"]).sends("stale")
    assert not Alerts(on=["success"]).sends("success")  # no channel
    assert not Alerts(email=["a@example.com"]).sends("success")  # not in the default
    with pytest.raises(ValidationError):
        Alerts(email=["a@example.com"], on=["stale", "sometimes"])


def test_a_success_mail_lists_each_fact_on_its_line():
    event = AlertEvent(kind="success", dag_id="p", task_id="", run_id="r1", date="2025-03-01", try_number=1,
                       max_tries=0, error="", log_url="http://ui/dags/p/runs/r1",
                       details=("publish 2025-03-01: table a.b 3 rows",) + tuple(f"x{i}" for i in range(60)))
    body = email_message(event, ["a@example.com"], "d@example.com").get_content()
    assert "Published:\n- publish 2025-03-01: table a.b 3 rows\n- x0\n" in body
    assert "- ... and 11 more" in body and "Run: http://ui/dags/p/runs/r1" in body and "Try:" not in body


def test_a_worker_builds_only_the_freshness_dag_it_runs(tmp_path, monkeypatch):
    from dagspec.airflow.loader import load_dags

    (tmp_path / "p.json").write_text(json.dumps({
        "dag_id": "p", "start_date": "2025-01-01", "freshness": {"max_age_hours": 2, "schedule": "@hourly"},
        "steps": [EXTRACT]}))
    assert sorted(load_dags(tmp_path, write_stubs=False)) == ["p", "p__freshness"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "p__freshness")
    assert list(load_dags(tmp_path, write_stubs=False)) == ["p__freshness"]
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "p")
    assert list(load_dags(tmp_path, write_stubs=False)) == ["p"]
