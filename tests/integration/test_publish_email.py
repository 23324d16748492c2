"""Report e-mails over real SMTP (aiosmtpd on loopback): the batch as an HTML table, a CSV or an Excel file."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from support.day_runs import run_day, write_definition
from support.expected import expected_revenue

from dagspec.publish.email_report import ReportTooLarge

D1 = date(2025, 3, 1)


def definition(tmp_path, smtp, monkeypatch, **email):
    monkeypatch.setenv("AIRFLOW_CONN_REPORT_MAIL", f"smtp://127.0.0.1:{smtp.port}/?from_email=reports%40example.com")
    return write_definition(tmp_path, "t_mail", [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue",
         "table": {"schema": "analytics", "table": "revenue"},
         "email": {"to": ["finance@example.com", "ceo@example.com"], "smtp_conn_id": "report_mail", **email}},
    ], params={"team": "Finance"})


def want(data_home) -> list[tuple]:
    return [tuple(r[:-1]) for r in expected_revenue(data_home / "source.db", D1)]


def test_an_html_report_holds_every_row_escaped_with_a_templated_subject(tmp_path, data_home, smtp, monkeypatch):
    run_day(definition(tmp_path, smtp, monkeypatch, subject="{{ params.team }}: revenue {{ ds }}"), D1)
    (rcpt, msg), = smtp.messages
    assert sorted(rcpt) == ["ceo@example.com", "finance@example.com"]
    assert msg["Subject"] == "Finance: revenue 2025-03-01" and msg["From"] == "reports@example.com"
    body = msg.get_body(("html",)).get_content()
    for channel, orders, *_ in want(data_home):
        assert f"<td>{channel}</td><td>{orders}</td>" in body
    assert msg.get_body(("plain",)).get_content().startswith(f"t_mail_daily_revenue_2025-03-01: {len(want(data_home))}")


def test_csv_and_xlsx_attachments_hold_the_exact_rows(tmp_path, data_home, smtp, monkeypatch):
    import csv

    import openpyxl

    for fmt in ("csv", "xlsx"):
        run_day(definition(tmp_path, smtp, monkeypatch, format=fmt), D1)
    (_, as_csv), (_, as_xlsx) = smtp.messages
    part = next(as_csv.iter_attachments())
    assert part.get_filename() == "t_mail_daily_revenue_2025-03-01.csv"
    rows = list(csv.reader(io.StringIO(part.get_content())))[1:]
    assert [(c, int(o), int(lo), Decimal(g), Decimal(n)) for c, o, lo, g, n in rows] == want(data_home)
    part = next(as_xlsx.iter_attachments())
    assert part.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(part.get_content()), read_only=True)
    cells = list(book.worksheets[0].iter_rows(values_only=True))[1:]
    assert [(c, o, lo, Decimal(str(g)), Decimal(str(n))) for c, o, lo, g, n in cells] == want(data_home)


def test_limits_stop_the_step_before_anything_is_sent(tmp_path, data_home, smtp, monkeypatch):
    with pytest.raises(ReportTooLarge, match=r"more than 2 rows, this e-mail target's max_rows"):
        run_day(definition(tmp_path, smtp, monkeypatch, max_rows=2), D1)
    with pytest.raises(ReportTooLarge, match=r"more than its max_bytes \(1,000\)"):
        run_day(definition(tmp_path, smtp, monkeypatch, max_bytes=1000), D1)
    assert smtp.messages == []


def test_a_subject_cannot_add_headers_and_values_cannot_add_markup(smtp):
    import pyarrow as pa

    from dagspec.connections import ConnectionInfo
    from dagspec.publish.email_report import send_report
    from dagspec.spec.model import EmailTarget

    info = ConnectionInfo("m", "smtp", "127.0.0.1", smtp.port)
    target = EmailTarget.model_validate({"to": ["a@example.com"]})
    table = pa.table({"v": ["<script>alert(1)</script>", "</td></tr></table><img src=x onerror=alert(1)>"]})
    send_report(info, target, "Report\r\nBcc: everyone@example.com", "t", pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches()))
    (rcpt, msg), = smtp.messages
    assert rcpt == ["a@example.com"] and msg["Bcc"] is None
    body = msg.get_body(("html",)).get_content()
    assert "<script>" not in body and "<img" not in body and "&lt;script&gt;" in body
