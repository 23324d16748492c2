"""Excel exports: one workbook per partition, typed cells, formulas never, Excel's limits checked; read back with openpyxl."""

from __future__ import annotations

import datetime as dt
from datetime import date
from decimal import Decimal

import pyarrow as pa
import pytest
from support.day_runs import run_day, write_definition
from support.expected import expected_revenue

from dagspec.connections import ConnectionInfo
from dagspec.publish.files import export_partition
from dagspec.store import Store
from dagspec.store_xlsx import MAX_CELL_CHARS, TooBigForExcel

D1 = date(2025, 3, 1)


def workbook_rows(path) -> tuple[str, list[tuple]]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True)
    sheet = book.worksheets[0]
    rows = [tuple(r) for r in sheet.iter_rows(values_only=True)]
    title = sheet.title
    book.close()
    return title, rows


def test_a_publish_exports_the_batch_as_one_workbook_and_a_rerun_holds_the_same_cells(tmp_path, data_home):
    path = write_definition(tmp_path, "t_xlsx", [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue",
         "export": {"format": "xlsx", "target": {"schema": "reports", "table": "revenue"}}},
    ])
    run_day(path, D1)
    part = Store(data_home / "store").partition("reports", "revenue", D1)
    assert len(part.files) == 1 and str(part.files[0]).endswith(".xlsx")
    title, rows = workbook_rows(part.files[0])
    assert title == "revenue"
    assert rows[0] == ("channel", "orders", "lost_orders", "gross_revenue", "net_revenue")
    want = [tuple(r[:-1]) for r in expected_revenue(data_home / "source.db", D1)]
    assert [(c, o, lo, Decimal(str(g)), Decimal(str(n))) for c, o, lo, g, n in rows[1:]] == want
    assert part.rows == len(want)
    run_day(path, D1)
    assert workbook_rows(Store(data_home / "store").partition("reports", "revenue", D1).files[0])[1] == rows


def _store(tmp_path) -> Store:
    return Store.from_connection(ConnectionInfo("s", "fs", extra={"path": str(tmp_path / "store")}))


def _export(tmp_path, table: pa.Table):
    store = _store(tmp_path)
    return store, export_partition(store, "xlsx", "reports", "t", D1, table.schema, table.to_batches())


def test_cells_keep_their_types_and_digits(tmp_path):
    table = pa.table({
        "id": pa.array([1, 10 ** 17 + 1], pa.int64()),
        "amount": pa.array([Decimal("12.50"), Decimal("1234567890.1234567890")], pa.decimal128(20, 10)),
        "day": pa.array([D1, None], pa.date32()),
        "at": pa.array([dt.datetime(2025, 3, 1, 5, 30, tzinfo=dt.UTC), None], pa.timestamp("us", tz="UTC")),
        "ok": [True, False],
        "raw": [b"\x00\xff", None],
    })
    store, _ = _export(tmp_path, table)
    _, rows = workbook_rows(store.partition("reports", "t", D1).files[0])
    assert rows[1] == (1, 12.5, dt.datetime(2025, 3, 1), dt.datetime(2025, 3, 1, 5, 30), True, "00ff")
    # Past 15 significant digits Excel would round: those keep every digit as text.
    assert rows[2] == ("100000000000000001", "1234567890.1234567890", None, None, False, None)


def test_a_formula_in_a_source_row_stays_text(tmp_path):
    hostile = ['=HYPERLINK("http://evil","x")', "+1+cmd|' /C calc'!A0", "@SUM(1)", "http://example.com", "007"]
    store, _ = _export(tmp_path, pa.table({"v": hostile}))
    path = store.partition("reports", "t", D1).files[0]
    _, rows = workbook_rows(path)
    assert [r[0] for r in rows[1:]] == hostile
    import zipfile

    with zipfile.ZipFile(path) as z:
        sheet_xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml and "<hyperlinks" not in sheet_xml  # no formula cell, no link


def test_excel_limits_are_refused_and_leave_no_partition(tmp_path):
    with pytest.raises(TooBigForExcel, match=r"row 1, column 'v': 32,768 characters"):
        _export(tmp_path, pa.table({"v": ["x" * (MAX_CELL_CHARS + 1)]}))
    with pytest.raises(FileNotFoundError):
        _store(tmp_path).partition("reports", "t", D1)
