"""Sheets as people use them: a target showing the newest batch, the whole published table, or every batch
appended; and a hand-kept worksheet as an extract source, typed by its declared columns.

The real gspread client against the Sheets v4 HTTP fake; the expected rows come from the sample source
database through support.expected, not through dagspec.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.day_runs import run_day as run
from support.day_runs import write_definition
from support.expected import expected_revenue
from support.sheets_fake import FakeSheets
from support.sheets_fixtures import SHEET_ID

from dagspec.connections import ConnectionInfo
from dagspec.publish.sheets import SheetNotOurs, SheetTooLarge, publish_sheet
from dagspec.spec import load_definition
from dagspec.spec.errors import DefinitionError
from dagspec.stages import StepFailed
from dagspec.store import Store

D1, D2, D3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)
HEADER = ["channel", "orders", "lost_orders", "gross_revenue", "net_revenue"]


def definition(tmp_path: Path, mode: str, table: bool = True, max_rows: int = 1000) -> Path:
    publish = {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue",
               "sheet": {"conn_id": "sheets", "spreadsheet_id": SHEET_ID, "worksheet": "Revenue", "mode": mode,
                         "max_rows": max_rows}}
    if table:
        publish["table"] = {"schema": "analytics", "table": "revenue"}
    steps = [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        publish,
    ]
    return write_definition(tmp_path, "t_sheets", steps)


def expected(data_home: Path, day: date, with_date: bool) -> list[tuple]:
    return [((day.isoformat(),) if with_date else ()) + tuple(r[:-1]) for r in expected_revenue(data_home / "source.db", day)]


def cells(values: list[list], with_date: bool) -> list[tuple]:
    """Sheet rows as comparable tuples: money columns back to Decimal (the sheet holds numbers)."""
    first = 1 if with_date else 0
    out = []
    for r in values:
        row = list(r)
        for i in (first + 3, first + 4):
            row[i] = Decimal(str(row[i]))
        out.append(tuple(row))
    return out


def test_batch_mode_shows_only_the_newest_batch(tmp_path, data_home, sheets):
    path = definition(tmp_path, "batch")
    run(path, D1)
    run(path, D2)
    got = sheets.sheet(SHEET_ID, "Revenue").values()
    assert got[0] == HEADER
    assert cells(got[1:], False) == expected(data_home, D2, False)


def test_table_mode_shows_every_published_batch_with_its_date_in_a_stable_order(tmp_path, data_home, sheets):
    path = definition(tmp_path, "table")
    for day in (D2, D1, D3):  # loaded out of order: the sheet is still oldest first
        run(path, day)
    got = sheets.sheet(SHEET_ID, "Revenue").values()
    assert got[0] == [*HEADER, "batch_date"]
    rows = [(r[-1], *r[:-1]) for r in got[1:]]
    want = sorted(expected(data_home, D1, True) + expected(data_home, D2, True) + expected(data_home, D3, True))
    assert cells(rows, True) == want
    before = got
    run(path, D2)  # a re-run of a middle day writes the same cells in the same places
    assert sheets.sheet(SHEET_ID, "Revenue").values() == before


def test_append_mode_adds_batches_in_date_order_and_a_rerun_replaces_only_its_own_rows(tmp_path, data_home, sheets):
    path = definition(tmp_path, "append", table=False)
    for day in (D1, D3, D2):
        run(path, day)
    got = sheets.sheet(SHEET_ID, "Revenue").values()
    assert got[0] == ["batch_date", *HEADER]
    want = expected(data_home, D1, True) + expected(data_home, D2, True) + expected(data_home, D3, True)
    assert [r[0] for r in got[1:]] == sorted(r[0] for r in got[1:])  # date order, whatever order they ran in
    assert sorted(cells(got[1:], True)) == want
    run(path, D2)
    assert sorted(cells(sheets.sheet(SHEET_ID, "Revenue").values()[1:], True)) == want


def test_append_mode_refuses_a_worksheet_someone_else_wrote_and_leaves_it_alone(tmp_path, data_home, sheets):
    sheet = sheets.sheet(SHEET_ID, "Revenue")
    sheet.cells.update({(1, 1): "region", (1, 2): "target", (2, 1): "EMEA", (2, 2): 5})
    with pytest.raises(SheetNotOurs, match=r"worksheet 'Revenue' starts with columns \['region', 'target'\]"):
        run(definition(tmp_path, "append", table=False), D1)
    assert sheet.values() == [["region", "target"], ["EMEA", 5]]


def test_append_mode_stops_at_max_rows_before_writing(tmp_path, data_home, sheets):
    path = definition(tmp_path, "append", table=False, max_rows=6)
    run(path, D1)  # 4 channels
    before = sheets.sheet(SHEET_ID, "Revenue").values()
    with pytest.raises(SheetTooLarge, match=r"would hold 8 rows, more than this sheet target's max_rows \(6\)"):
        run(path, D2)
    assert sheets.sheet(SHEET_ID, "Revenue").values() == before


def test_table_mode_without_a_warehouse_table_is_a_definition_error(tmp_path):
    with pytest.raises(DefinitionError) as err:
        load_definition(definition(tmp_path, "table", table=False))
    assert "add a 'table' to this step" in str(err.value) and "steps[2]" in str(err.value)


def test_append_into_a_new_worksheet_creates_it():
    import pyarrow as pa

    fake = FakeSheets()
    fake.add_spreadsheet(SHEET_ID, sheets=(("Other", 10, 10),))
    endpoint = fake.start()
    try:
        info = ConnectionInfo("sheets", "google_cloud_platform", extra={"endpoint": endpoint})
        table = pa.table({"n": [1, 2], "label": ["a", "b"]})
        assert publish_sheet(info, SHEET_ID, "Log", table, max_rows=10, append_for=D1) == 2
        assert publish_sheet(info, SHEET_ID, "Log", table, max_rows=10, append_for=D2) == 4
        assert fake.sheet(SHEET_ID, "Log").values() == [
            ["batch_date", "n", "label"], ["2025-03-01", 1, "a"], ["2025-03-01", 2, "b"],
            ["2025-03-02", 1, "a"], ["2025-03-02", 2, "b"]]
    finally:
        fake.stop()


# -- a worksheet as a source ---------------------------------------------------------------------------

LOOKUP = [
    ["region", "target", "valid_from", "active", "code", "notes", "ignored"],
    ["EMEA", 1250.5, 45717, True, 7, "=IMPORTXML(\"http://x\")", "x"],  # 45717 = 2025-03-01 as a date cell
    ["APAC", "980.25", "2025-02-01", "FALSE", "0042", "'; DROP TABLE t; --", ""],
    [],  # a blank row in the middle is skipped
    ["AMER", 2000, "", "yes", 12.0, "", ""],
]


def lookup_definition(tmp_path: Path, columns: dict | None = None) -> Path:
    source = {"kind": "sheet", "conn_id": "sheets", "spreadsheet_id": SHEET_ID, "worksheet": "Other",
              "columns": columns or {"region": "string", "target": "decimal(12,2)", "valid_from": "date",
                                     "active": "bool", "code": "string", "notes": "string"}}
    return write_definition(tmp_path, "t_lookup", [
        {"id": "extract_regions", "kind": "extract", "source": source, "target": {"schema": "ref", "table": "regions"}}])


def fill(fake: FakeSheets, rows: list[list]) -> None:
    sheet = fake.sheet(SHEET_ID, "Other")
    sheet.cells = {(i, j): v for i, row in enumerate(rows, start=1) for j, v in enumerate(row, start=1) if v != ""}


def test_a_worksheet_is_staged_whole_with_the_declared_types_and_a_rerun_is_identical(tmp_path, data_home, sheets):
    fill(sheets, LOOKUP)
    path = lookup_definition(tmp_path)
    assert run(path, D1) == {"extract_regions": {"2025-03-01": 3}}
    part = Store(data_home / "store").partition("ref", "regions", D1)
    table = pq.read_table(part.files[0])
    assert [str(t) for t in table.schema.types] == ["string", "decimal128(12, 2)", "date32[day]", "bool", "string",
                                                     "string"]
    assert table.to_pylist() == [
        {"region": "EMEA", "target": Decimal("1250.50"), "valid_from": D1, "active": True, "code": "7",
         "notes": '=IMPORTXML("http://x")'},
        {"region": "APAC", "target": Decimal("980.25"), "valid_from": date(2025, 2, 1), "active": False,
         "code": "0042", "notes": "'; DROP TABLE t; --"},
        {"region": "AMER", "target": Decimal("2000.00"), "valid_from": None, "active": True, "code": "12",
         "notes": None},
    ]
    run(path, D1)
    assert pq.read_table(Store(data_home / "store").partition("ref", "regions", D1).files[0]) == table


@pytest.mark.parametrize(("cell", "column", "type_name", "message"), [
    ("12,50", "target", "decimal(12,2)", r"row 3, column 'target': '12,50' is not a number \(the column is declared"),
    (1.005, "target", "decimal(12,2)", r"row 3, column 'target': 1.005 does not fit decimal\(12,2\)"),
    ("maybe", "active", "bool", r"row 3, column 'active': 'maybe' is not a boolean"),
    ("01/02/2025", "valid_from", "date", r"row 3, column 'valid_from': '01/02/2025' is not a date"),
])
def test_a_cell_that_is_not_its_columns_type_fails_naming_row_and_column(tmp_path, data_home, sheets, cell, column,
                                                                          type_name, message):
    rows = [list(r) for r in LOOKUP]
    rows[2][LOOKUP[0].index(column)] = cell
    fill(sheets, rows)
    with pytest.raises(StepFailed, match=message):
        run(lookup_definition(tmp_path), D1)
    with pytest.raises(FileNotFoundError):  # nothing staged
        Store(data_home / "store").partition("ref", "regions", D1)


def test_a_declared_column_missing_from_the_header_names_what_the_sheet_has(tmp_path, data_home, sheets):
    fill(sheets, LOOKUP)
    with pytest.raises(StepFailed, match=r"no column\(s\) 'owner' in the first row \(it has 'region', 'target'"):
        run(lookup_definition(tmp_path, {"region": "string", "owner": "string"}), D1)


def test_a_missing_worksheet_is_named(tmp_path, data_home, sheets):
    path = lookup_definition(tmp_path)
    path.write_text(path.read_text().replace('"worksheet": "Other"', '"worksheet": "Nope"'))
    with pytest.raises(StepFailed, match=r"no worksheet 'Nope'"):
        run(path, D1)


def test_an_unknown_column_type_is_a_definition_error(tmp_path):
    with pytest.raises(DefinitionError) as err:
        load_definition(lookup_definition(tmp_path, {"region": "varchar(10)"}))
    assert "steps[0].source" in str(err.value) and "region" in str(err.value)
