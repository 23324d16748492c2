"""Alerts over real protocols (an SMTP sink and an HTTP sink on loopback) and the freshness check.

The last test fails a real Airflow task (dag.test) and checks that both its retry and its failure
reach both channels, with the error summary but without the connection's password.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from support.alert_sinks import HttpSink

from dagspec.alerts import AlertEvent, scrub, send_alerts, summarize_error
from dagspec.connections import parse_connection
from dagspec.freshness import check_freshness
from dagspec.partitions import PartitionKey
from dagspec.spec.model import Alerts, Pipeline
from dagspec.store import Store

SECRET = "Sup3r-Secret-pw"


def event(**over) -> AlertEvent:
    base = dict(kind="failure", dag_id="orders_daily", task_id="extract_orders", run_id="scheduled__2025-03-01",
                date="2025-03-01 .. 2025-03-02", try_number=2, max_tries=1,
                error="OperationalError: no such table: orders",
                log_url="http://127.0.0.1:8080/dags/orders_daily/runs/scheduled__2025-03-01/tasks/extract_orders")
    base.update(over)
    return AlertEvent(**base)


def resolver_for(conns: dict[str, str]):
    return lambda conn_id: parse_connection(conn_id, conns[conn_id])


def test_email_and_webhook_carry_dag_task_date_error_and_log_link(smtp, hook):
    conns = {
        "mail": f"smtp://alerts:{SECRET}@127.0.0.1:{smtp.port}/?from_email=dagspec%40example.com",
        "slack": f"http://127.0.0.1:{hook.port}/services/T000/B000/XXXX",
    }
    alerts = Alerts(email=["data@example.com", "oncall@example.com"], smtp_conn_id="mail", webhook_conn_id="slack")
    # aiosmtpd offers no AUTH on plain connections: a login must fail, and the alert say so without the password.
    delivered = send_alerts(alerts, event(), resolver_for(conns))
    assert delivered == {"email": False, "webhook": True}

    conns["mail"] = f"smtp://127.0.0.1:{smtp.port}/?from_email=dagspec%40example.com"
    assert send_alerts(alerts, event(), resolver_for(conns)) == {"email": True, "webhook": True}

    rcpts, msg = smtp.messages[-1]
    assert rcpts == ["data@example.com", "oncall@example.com"]
    assert msg["From"] == "dagspec@example.com"
    assert msg["Subject"].strip() == "[dagspec] orders_daily.extract_orders failed for 2025-03-01 .. 2025-03-02"
    body = msg.get_content()
    for fact in ("DAG:   orders_daily", "Task:  extract_orders", "Date:  2025-03-01 .. 2025-03-02",
                 "no such table: orders", event().log_url):
        assert fact in body

    path, payload = hook.posts[-1]
    assert path == "/services/T000/B000/XXXX"
    assert payload["text"].startswith(":red_circle: [dagspec] orders_daily.extract_orders failed")
    text = json.dumps(payload)
    for fact in ("orders_daily", "extract_orders", "2025-03-01 .. 2025-03-02", "no such table: orders",
                 f"<{event().log_url}|Task log>"):
        assert fact in text
    assert len(hook.posts) == 2


def test_retry_alert_names_the_try_and_channels_follow_on(smtp, hook):
    conns = {"mail": f"smtp://127.0.0.1:{smtp.port}", "slack": f"http://127.0.0.1:{hook.port}/x"}
    only_failures = Alerts(email=["a@example.com"], smtp_conn_id="mail", webhook_conn_id="slack", on=["failure"])
    assert send_alerts(only_failures, event(kind="retry", try_number=1), resolver_for(conns)) == {}
    both = only_failures.model_copy(update={"on": ["failure", "retry"]})
    assert send_alerts(both, event(kind="retry", try_number=1), resolver_for(conns)) == {"email": True, "webhook": True}
    assert smtp.messages[0][1]["Subject"].endswith("failed, will retry (try 1/2) for 2025-03-01 .. 2025-03-02")
    assert ":large_orange_circle:" in hook.posts[0][1]["text"]


def test_unreachable_or_refusing_webhook_is_logged_without_its_url(caplog):
    refusing = HttpSink(status=500)
    try:
        conns = {"slack": f"http://127.0.0.1:{refusing.port}/services/T1/B1/{SECRET}"}
        alerts = Alerts(webhook_conn_id="slack")
        assert send_alerts(alerts, event(), resolver_for(conns)) == {"webhook": False}
    finally:
        refusing.stop()
    assert "webhook connection 'slack' answered HTTP 500" in caplog.text
    assert SECRET not in caplog.text and str(refusing.port) not in caplog.text


def test_scrub_removes_known_secrets_and_credential_shapes():
    text = (f"could not connect to postgresql://etl:{SECRET}@db:5432/shop; password={SECRET}x "
            f"token: 'abc123' Authorization: Bearer eyJhbGciOi.x.y https://hooks.slack.com/services/T1/B2/zzz "
            f"[SQL: SELECT '{SECRET}']")
    clean = scrub(text, [SECRET])
    assert SECRET not in clean and "abc123" not in clean and "eyJhbGciOi" not in clean and "zzz" not in clean
    assert "postgresql://etl:***@db:5432/shop" in clean and "hooks.slack.com/services/***" in clean
    long = summarize_error(ValueError("x" * 5000))
    assert long.startswith("ValueError: xxx") and len(long) <= 600


def test_secrets_of_every_named_connection_are_collected_for_scrubbing():
    from dagspec.alerts import pipeline_secrets

    pipeline = Pipeline.model_validate({
        "dag_id": "secrets", "start_date": "2025-01-01",
        "steps": [
            {"id": "e", "kind": "extract", "source": {"conn_id": "shop", "table": "orders"},
             "target": {"schema": "raw", "table": "orders"}},
            {"id": "p", "kind": "publish", "input": "e",
             "export": {"format": "csv", "conn_id": "lake", "target": {"schema": "out", "table": "orders"}},
             "bigquery": {"conn_id": "bq", "dataset": "shop", "table": "orders"}},
        ],
    })
    key = "-----BEGIN PRIVATE KEY-----\nMIIEv" + SECRET + "\n-----END PRIVATE KEY-----\n"
    connections = {
        "shop": parse_connection("shop", f"postgresql://etl:{SECRET}-1@db/shop"),
        "lake": parse_connection("lake", json.dumps({"conn_type": "aws", "login": "AKIA",
                                                     "extra": {"aws_session_token": f"{SECRET}-2"}})),
        "bq": parse_connection("bq", json.dumps({"conn_type": "google_cloud_platform", "extra": {
            "project": "p1", "keyfile_dict": json.dumps({"client_email": "a@b.iam", "private_key": key})}})),
    }

    def resolver(conn_id):
        if conn_id not in connections:
            raise LookupError(conn_id)
        return connections[conn_id]

    found = pipeline_secrets(pipeline, resolver)
    assert f"{SECRET}-1" in found and f"{SECRET}-2" in found and key in found
    assert "AKIA" not in found and "p1" not in found and "a@b.iam" not in found


def test_model_rejects_an_address_list_in_one_string():
    with pytest.raises(ValueError):
        Alerts(email=["a@example.com, b@example.com"])


# ---------------------------------------------------------------- freshness


def _pipeline(max_age_hours: float | None = 36) -> Pipeline:
    return Pipeline.model_validate({
        "dag_id": "fresh", "start_date": "2025-01-01",
        **({"freshness": {"max_age_hours": max_age_hours}} if max_age_hours else {}),
        "steps": [
            {"id": "e", "kind": "extract", "source": {"table": "orders"}, "target": {"schema": "raw", "table": "orders"}},
            {"id": "p", "kind": "publish", "input": "e", "table": {"schema": "out", "table": "orders"},
             "export": {"format": "parquet"}},
        ],
    })


def _write(store: Store, schema: str, table: str, day: date, rows: int) -> None:
    data = pa.table({"x": list(range(rows))})
    store.write_partition(schema, table, day, data.schema, data.to_batches())


def test_freshness_marks_a_table_stale_past_the_allowed_age(data_home):
    store = Store(data_home / "store")
    _write(store, "raw", "orders", date(2025, 3, 1), 5)
    _write(store, "raw", "orders", date(2025, 3, 2), 7)
    _write(store, "out", "orders", date(2025, 3, 1), 5)
    # The 2025-03-02 partition holds data up to 2025-03-03 00:00: 30 h old at 06:00 the day after.
    now = datetime(2025, 3, 4, 6, tzinfo=UTC)
    got = {v.table: v for v in check_freshness(_pipeline(36), now=now)}
    raw = got["raw.orders"]
    assert (raw.latest, raw.rows, raw.stale) == (PartitionKey(date(2025, 3, 2)), 7, False)
    assert got["raw.orders"].age_hours == pytest.approx(30)
    assert (got["out.orders"].latest, got["out.orders"].stale) == (PartitionKey(date(2025, 3, 1)), True)
    assert "older than the 36 h allowed" in got["out.orders"].reason

    empty = check_freshness(_pipeline(36), now=now, max_age_hours=1000)
    assert [v.stale for v in empty] == [False, False]
    with pytest.raises(ValueError, match="no 'freshness'"):
        check_freshness(_pipeline(None), now=now)


def test_freshness_of_a_table_without_partitions_is_stale(data_home):
    got = check_freshness(_pipeline(24), now=datetime(2025, 3, 4, tzinfo=UTC))
    assert [(v.table, v.latest, v.stale, v.reason) for v in got] == [
        ("raw.orders", None, True, "no staged partition"), ("out.orders", None, True, "no staged partition")]


def test_freshness_cli_exits_1_when_stale(data_home, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    defs = tmp_path / "defs"
    defs.mkdir()
    spec = _pipeline(24).model_dump(by_alias=True, exclude_none=True, mode="json")
    (defs / "fresh.json").write_text(json.dumps(spec))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    store = Store(data_home / "store")
    today = datetime.now(UTC).date()
    _write(store, "raw", "orders", today, 3)
    result = CliRunner().invoke(app, ["freshness", "fresh"])
    assert result.exit_code == 1, result.output  # out.orders has no partition
    assert "raw.orders" in result.output and "fresh" in result.output and "stale" in result.output
    _write(store, "out", "orders", today, 3)
    result = CliRunner().invoke(app, ["freshness"])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- through Airflow


@pytest.mark.e2e
def test_failing_airflow_task_alerts_on_retry_and_failure_without_the_password(
        airflow_db, dags_folder, data_home, smtp, hook, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    # The source's SQL fails and SQLAlchemy quotes it in the error: the password inside must not travel.
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SRC", json.dumps(
        {"conn_type": "sqlite", "host": str(data_home / "source.db"), "password": SECRET}))
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_SMTP", f"smtp://127.0.0.1:{smtp.port}/?from_email=af%40example.com")
    monkeypatch.setenv("AIRFLOW_CONN_ALERT_HOOK", f"http://127.0.0.1:{hook.port}/services/T9/B9/hook")
    (dags_folder / "definitions" / "alerting.json").write_text(json.dumps({
        "dag_id": "alerting", "start_date": "2025-01-01", "retries": 1, "retry_delay_minutes": 0,
        "alerts": {"email": ["oncall@example.com"], "smtp_conn_id": "alert_smtp", "webhook_conn_id": "alert_hook"},
        "steps": [{"id": "extract_missing", "kind": "extract",
                   "source": {"conn_id": "alert_src",
                              "query": f"SELECT '{SECRET}' AS k FROM no_such_table "
                                       "WHERE d >= :from_date AND d < :to_date"},
                   "target": {"schema": "raw", "table": "missing"}}],
    }))
    dag = DagBag(dag_folder=str(dags_folder)).dags["alerting"]
    assert dag.get_task("extract_missing").on_failure_callback
    run = dag.test(logical_date=datetime(2025, 3, 2, tzinfo=UTC))
    assert str(run.state) == "failed"

    subjects = [m["Subject"].strip() for _, m in smtp.messages]
    assert subjects == [
        "[dagspec] alerting.extract_missing failed, will retry (try 1/2) for 2025-03-01 .. 2025-03-02",
        "[dagspec] alerting.extract_missing failed for 2025-03-01 .. 2025-03-02",
    ]
    body = smtp.messages[-1][1].get_content()
    assert "no such table: no_such_table" in body and "/dags/alerting/runs/" in body and "try_number=2" in body
    assert [p for p, _ in hook.posts] == ["/services/T9/B9/hook"] * 2
    everything = "".join(m.as_string() for _, m in smtp.messages) + json.dumps([b for _, b in hook.posts])
    assert SECRET not in everything, everything[max(0, everything.find(SECRET) - 300):everything.find(SECRET) + 100]
    assert not (data_home / "store" / "raw" / "missing").exists()
