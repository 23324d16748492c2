"""Hostile text in success, warn and stale alerts: a check's column, an observed value or a table name holding
CR/LF, mail headers, HTML or Slack link markup reaches neither a header nor the markup of the message.

Sent over the real SMTP sink (aiosmtpd) and the HTTP sink; what arrives is parsed back and inspected.
"""

from __future__ import annotations

import json
from datetime import date

from support.day_runs import run_day, write_definition

from dagspec.alerts import AlertEvent
from dagspec.alerts_runs import deliver, warn_event
from dagspec.connections import env_resolver
from dagspec.spec.model import Pipeline

EVIL = "amount\r\nBcc: evil@example.com\r\n\r\n<script>alert(1)</script> <https://evil.example|click me> *bold*"


def _alerts(smtp, hook, monkeypatch, on: list[str]) -> dict:
    monkeypatch.setenv("AIRFLOW_CONN_EVIL_MAIL", f"smtp://127.0.0.1:{smtp.port}/?from_email=dagspec%40example.com")
    monkeypatch.setenv("AIRFLOW_CONN_EVIL_HOOK", f"http://127.0.0.1:{hook.port}/hook")
    return {"email": ["data@example.com"], "smtp_conn_id": "evil_mail", "webhook_conn_id": "evil_hook", "on": on}


def _assert_inert(smtp, hook) -> None:
    (rcpts, msg), = smtp.messages
    assert rcpts == ["data@example.com"]  # no Bcc smuggled into the envelope
    assert msg["Bcc"] is None and "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert msg.get_content_type() == "text/plain"  # nothing a mail reader renders as markup
    body = msg.get_content()
    line = next(text for text in body.splitlines() if "<script>" in text)
    assert line.startswith("- ") and "Bcc: evil@example.com" in line  # the whole value on one line of the list
    assert not any(text.startswith("Bcc:") for text in body.splitlines())
    (_, payload), = hook.posts
    raw = json.dumps(payload)
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    assert "<https://evil.example|" not in raw  # Slack would render that as a link
    for block in payload["blocks"][2:3]:
        bullets = block["text"]["text"].split("\n")[1:]
        assert all(b.startswith("• ") for b in bullets)  # a CR/LF in a value starts no line of its own


def test_a_hostile_check_column_and_observed_value_stay_text(smtp, hook, monkeypatch):
    pipeline = Pipeline.model_validate({
        "dag_id": "evil", "start_date": "2025-01-01", "alerts": _alerts(smtp, hook, monkeypatch, ["warn"]),
        "steps": [{"id": "e", "kind": "extract", "source": {"table": "orders"},
                   "target": {"schema": "raw", "table": "orders"}}]})
    event = warn_event(pipeline, "check", "r1", ["2025-03-01"], [f"expect_column_max_to_be_between({EVIL}): observed "
                                                                 f"\"{EVIL}\""], "file:///r.html\r\nX-Evil: 1")
    assert deliver(pipeline, event, env_resolver) == {"email": True, "webhook": True}
    _assert_inert(smtp, hook)
    assert smtp.messages[0][1]["X-Evil"] is None


def test_a_hostile_stale_table_line_and_task_id_stay_on_their_lines(smtp, hook, monkeypatch):
    pipeline = Pipeline.model_validate({
        "dag_id": "evil", "start_date": "2025-01-01", "alerts": _alerts(smtp, hook, monkeypatch, ["stale"]),
        "steps": [{"id": "e", "kind": "extract", "source": {"table": "orders"},
                   "target": {"schema": "raw", "table": "orders"}}]})
    event = AlertEvent(kind="stale", dag_id="evil", task_id="t\r\nBcc: evil@example.com", run_id="r", date="now",
                       try_number=1, max_tries=0, error="", log_url="", details=(f"raw.{EVIL}: no staged partition",))
    assert deliver(pipeline, event, env_resolver) == {"email": True, "webhook": True}
    _assert_inert(smtp, hook)


def test_a_real_warn_check_on_a_hostile_column_name_alerts_as_text(tmp_path, data_home, smtp, hook, monkeypatch):
    """Through the validate stage: the column does not exist, the warn check fails with an error, and its
    name (from the definition) and the error (which quotes it) go out inert."""
    alerts = _alerts(smtp, hook, monkeypatch, ["warn"])
    path = write_definition(tmp_path, "evil_checks", [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": EVIL}, "severity": "warn"}]}],
        alerts=alerts)
    results = run_day(path, date(2025, 3, 1))
    assert results["check_orders"]["2025-03-01"]["warnings"] == 1
    _assert_inert(smtp, hook)


def test_a_connection_password_in_an_observed_value_is_scrubbed(smtp, hook, monkeypatch):
    secret = "Sup3r-Secret-<pw>"
    monkeypatch.setenv("AIRFLOW_CONN_EVIL_SRC", json.dumps({"conn_type": "sqlite", "host": "/x.db", "password": secret}))
    pipeline = Pipeline.model_validate({
        "dag_id": "evil", "start_date": "2025-01-01", "alerts": _alerts(smtp, hook, monkeypatch, ["warn"]),
        "steps": [{"id": "e", "kind": "extract", "source": {"conn_id": "evil_src", "table": "orders"},
                   "target": {"schema": "raw", "table": "orders"}}]})
    event = warn_event(pipeline, "check", "r1", ["2025-03-01"], [f"expect_x(col): observed \"{secret}\""],
                       f"http://ui/report?token={secret}")
    assert deliver(pipeline, event, env_resolver) == {"email": True, "webhook": True}
    everything = smtp.messages[0][1].as_string() + json.dumps(hook.posts)
    assert "Sup3r-Secret" not in everything and "expect_x(col): observed" in everything
