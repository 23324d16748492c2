"""Hostile source rows: values stored in forms the team did not write, and rows no window can hold."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, date, datetime

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import need

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
from dagspec.store import Store

UTC = UTC
DAY, NEXT = date(2025, 3, 1), date(2025, 3, 2)


def _extract(data_home, info: ConnectionInfo, source: dict, start: date, end: date, caplog=None) -> dict:
    pipeline = Pipeline.model_validate({
        "dag_id": "hostile_sources", "start_date": "2025-01-01",
        "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": info.conn_id, **source},
                   "target": {"schema": "raw", "table": "out"}}],
    })
    resolver = lambda conn_id: info if conn_id == info.conn_id else env_resolver(conn_id)  # noqa: E731
    return run_step(pipeline, "extract", datetime.combine(start, datetime.min.time(), UTC),
                    datetime.combine(end, datetime.min.time(), UTC), resolver=resolver)


def _staged(data_home, day: date):
    part = Store(data_home / "store").partition("raw", "out", day)
    return pq.read_table(part.files[0]) if part.files else None


# SQLite keeps DATETIME as text in whatever form it was written; each row belongs to the batch of its instant.
ODD_TIMESTAMPS = [
    (0, "2025-03-01T10:00:00", DAY),           # ISO 'T' separator
    (1, "2025-03-01 10:00", DAY),              # no seconds
    (2, "2025-03-01 23:30:00-02:00", NEXT),    # an offset: 2025-03-02 01:30 UTC
    (3, "2025-03-01T23:59:59Z", DAY),
    (4, "2025-03-02 00:30:00+02:00", DAY),     # 2025-03-01 22:30 UTC
    (5, "2025-03-01", DAY),                    # a bare date: midnight
    (6, "2025-03-02", NEXT),
    (7, "2025-03-02 00:00:00.000000", NEXT),   # exactly the edge
    (8, "2025-03-01 23:59:59.999999", DAY),
]


@pytest.fixture()
def odd_lite(tmp_path) -> ConnectionInfo:
    path = tmp_path / "odd.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, amount NUMERIC(10,2), n TEXT, ok BOOLEAN)")
        con.executemany("INSERT INTO ev VALUES (?, ?, 1.5, 'x', 1)", [(i, t) for i, t, _ in ODD_TIMESTAMPS])
        con.execute("INSERT INTO ev VALUES (100, NULL, 1, 'no time', 0)")
        con.execute("INSERT INTO ev VALUES (101, NULL, 1, 'no time', 0)")
    return ConnectionInfo("odd_lite", "sqlite", host=str(path))


def test_sqlite_timestamps_in_any_text_form_land_in_their_instants_batch(odd_lite, data_home):
    result = _extract(data_home, odd_lite, {"table": "ev", "incremental_column": "at"}, DAY, date(2025, 3, 3))
    want = {d: sorted(i for i, _, day in ODD_TIMESTAMPS if day == d) for d in (DAY, NEXT)}
    assert result == {DAY.isoformat(): len(want[DAY]), NEXT.isoformat(): len(want[NEXT])}
    for day in (DAY, NEXT):
        table = _staged(data_home, day)
        assert sorted(table.column("id").to_pylist()) == want[day]
        lo, hi = datetime.combine(day, datetime.min.time()), datetime.combine(day, datetime.min.time()).replace(
            day=day.day + 1)
        assert all(lo <= v < hi for v in table.column("at").to_pylist())  # every value inside its own batch


def test_rows_with_a_null_incremental_column_are_counted_in_a_warning(odd_lite, data_home, caplog):
    with caplog.at_level(logging.WARNING, logger="dagspec"):
        _extract(data_home, odd_lite, {"table": "ev", "incremental_column": "at"}, DAY, NEXT)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2 row(s) of ev have a NULL at" in w for w in warnings), warnings


def test_a_duckdb_file_source_counts_null_keys_too(tmp_path, data_home, caplog):
    path = tmp_path / "src.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE ev (id INTEGER, seen TIMESTAMP)")
    con.execute("INSERT INTO ev VALUES (1, '2025-03-01 01:00'), (2, NULL), (3, NULL), (4, NULL)")
    con.close()
    info = ConnectionInfo("odd_duck", "duckdb", host=str(path))
    with caplog.at_level(logging.WARNING, logger="dagspec"):
        assert _extract(data_home, info, {"table": "ev", "incremental_column": "seen"}, DAY, NEXT) == {"2025-03-01": 1}
    assert any("3 row(s) of ev have a NULL seen" in r.getMessage() for r in caplog.records)


def test_a_not_null_incremental_column_is_not_counted_or_warned(tmp_path, data_home, caplog):
    path = tmp_path / "nn.db"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME NOT NULL)")
        con.execute("INSERT INTO ev VALUES (1, '2025-03-01 02:00:00')")
    info = ConnectionInfo("nn_lite", "sqlite", host=str(path))
    with caplog.at_level(logging.WARNING, logger="dagspec"):
        _extract(data_home, info, {"table": "ev", "incremental_column": "at"}, DAY, NEXT)
    assert not [r for r in caplog.records if "NULL" in r.getMessage()]


def test_sqlite_query_mode_keeps_declared_types_in_an_empty_window(odd_lite, data_home):
    q = "SELECT e.id, e.at AS t, amount, n, ok, id * 2 AS twice FROM ev e WHERE at >= :from_date AND at < :to_date"
    result = _extract(data_home, odd_lite, {"query": q}, date(2025, 6, 1), date(2025, 6, 2))
    assert result == {"2025-06-01": 0}
    empty = _staged(data_home, date(2025, 6, 1)).schema
    _extract(data_home, odd_lite, {"query": q}, DAY, NEXT)
    full = _staged(data_home, DAY)
    assert full.num_rows > 0
    assert empty == full.schema  # a day with rows and a day without stage the same schema
    types = {f.name: str(f.type) for f in empty}
    assert types == {"id": "int64", "t": "timestamp[us]", "amount": "decimal128(10, 2)", "n": "large_string",
                     "ok": "bool", "twice": "int64"}


def test_a_postgres_table_counts_null_keys(data_home, caplog):
    import psycopg

    try:
        con = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True,
                              connect_timeout=5)
    except psycopg.Error as exc:
        need(False, f"PostgreSQL on 127.0.0.1:5432 (user postgres): {exc}")
    with con:
        con.execute("CREATE SCHEMA IF NOT EXISTS hostile_src")
        con.execute("DROP TABLE IF EXISTS hostile_src.ev")
        con.execute("CREATE TABLE hostile_src.ev (id int, seen timestamptz)")
        con.execute("INSERT INTO hostile_src.ev VALUES (1, '2025-03-01 05:00+00'), (2, NULL), (3, NULL)")
        try:
            info = ConnectionInfo("hostile_pg", "postgres", "127.0.0.1", 5432, "postgres", None, "test")
            with caplog.at_level(logging.WARNING, logger="dagspec"):
                result = _extract(data_home, info, {"schema": "hostile_src", "table": "ev",
                                                    "incremental_column": "seen"}, DAY, NEXT)
            assert result == {"2025-03-01": 1}
            assert any("2 row(s) of ev have a NULL seen" in r.getMessage() for r in caplog.records)
        finally:
            con.execute("DROP SCHEMA hostile_src CASCADE")


@pytest.mark.parametrize("edge", ["2025-01-01'; DROP TABLE x; --", 20250101, None, b"2025-01-01"])
def test_a_window_edge_written_into_sql_is_only_ever_a_date_or_datetime(edge):
    from dagspec.sql import edge_literal, select_window

    with pytest.raises(TypeError, match="must be a date or datetime"):
        select_window('"t"', ['"a"'], "a", (edge, edge), mark=None)
    assert edge_literal(date(2025, 1, 1)) == "DATE '2025-01-01'"
    assert edge_literal(datetime(2025, 1, 1, 5, tzinfo=UTC)) == "TIMESTAMPTZ '2025-01-01 05:00:00+00:00'"


@pytest.mark.parametrize(("cell", "type_name", "says"), [
    ("9" * 400, "decimal(12,2)", "does not fit decimal(12,2)"),
    (float("nan"), "float64", "is not a number"),
    (float("inf"), "int64", "is not an integer"),
    (True, "int64", "is not an integer"),
    ("1e999999999", "int64", "does not fit int64"),
    ("2.5", "int64", "is not a whole number"),
    ("x" * 500, "date", "is not a date"),
])
def test_a_hostile_sheet_cell_is_a_precise_error_never_a_crash_or_a_value(cell, type_name, says):
    from dagspec.errors import StepFailed
    from dagspec.sources.sheet import typed
    from dagspec.spec.model import SheetSource

    source = SheetSource.model_validate({"kind": "sheet", "spreadsheet_id": "1dagspecFakeSheetId0123",
                                         "columns": {"v": type_name}})
    with pytest.raises(StepFailed) as err:
        typed([["v"], [cell]], source)
    message = str(err.value)
    assert says in message and "row 2, column 'v'" in message and len(message) < 300


def test_a_formula_or_sql_in_a_sheet_cell_stays_text():
    from dagspec.sources.sheet import typed
    from dagspec.spec.model import SheetSource

    source = SheetSource.model_validate({"kind": "sheet", "spreadsheet_id": "1dagspecFakeSheetId0123",
                                         "columns": {"v": "string"}})
    cells = ['=HYPERLINK("http://evil")', "'); DROP TABLE x; --", "{{ 7*7 }}", "\x00\u202e"]
    assert typed([["v"], *([c] for c in cells)], source).column("v").to_pylist() == cells
