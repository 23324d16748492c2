"""Extract from embedded database files, DuckDB and SQLite, into staged Parquet: exact types, window edges, errors.

The files are made here with each database's own Python driver, and the expected values are read
back through that driver, not through dagspec.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from test_sources_sql import (
    ALL_BYTES,
    BIG_TEXT,
    DAY,
    EDGE_EVENTS,
    FIRST_BATCH,
    SECOND_BATCH,
    UNICODE,
    by_id,
    extract,
    staged,
)

from dagspec.connections import ConnectionInfo, database_file, env_resolver, parse_connection
from dagspec.errors import StepFailed
from dagspec.sources import read_batches
from dagspec.spec.model import SqlSource
from dagspec.store import Store
from dagspec.windows import Batch

UTC = UTC
NEXT = DAY + timedelta(days=1)
SECOND_DAY = date(2025, 3, 3)
BIG_ROWS = 120_000


def edge_moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("+00", "+00:00"))


# ---------------------------------------------------------------- DuckDB

TYPED_DDL = """CREATE TABLE typed (
    id INTEGER PRIMARY KEY, amount DECIMAL(18,4), big DECIMAL(38,10), happened_at TIMESTAMP,
    happened_tz TIMESTAMPTZ, day DATE, name VARCHAR, payload BLOB, big_text VARCHAR, flag BOOLEAN,
    ratio DOUBLE, small SMALLINT, large BIGINT, huge HUGEINT)"""
TYPED_ROWS = [
    (1, Decimal("12345678901234.5678"), Decimal("1234567890123456789012345678.0123456789"),
     datetime(2025, 3, 1, 0, 0, 0), datetime(2025, 3, 1, tzinfo=UTC), date(2025, 3, 1), UNICODE, ALL_BYTES,
     BIG_TEXT, True, 0.1, -32768, 9_007_199_254_740_993, 170141183460469231731687303715884105727),
    (2, Decimal("-0.0001"), Decimal("-9999999999999999999999999999.9999999999"), datetime(1900, 1, 1, 0, 0, 0, 1),
     datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5))), date(1, 1, 1), "", b"", "",
     False, -1.5e300, 32767, -9_223_372_036_854_775_808, -1),
    (3, None, None, None, None, None, None, None, None, None, None, None, None, None),
    (4, Decimal("0"), Decimal("0E-10"), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(1970, 1, 1, tzinfo=UTC),
     date(9999, 12, 31), "\u00a0 lead and trail \u00a0", b"\x00", "NULL", True, float("inf"), 0, 0, 0),
]


@pytest.fixture(scope="module")
def duck(tmp_path_factory) -> ConnectionInfo:
    import duckdb

    path = tmp_path_factory.mktemp("duck") / "source.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(TYPED_DDL)
        con.executemany("INSERT INTO typed VALUES (" + ", ".join(["?"] * 14) + ")", TYPED_ROWS)
        con.execute('CREATE TABLE events (id INTEGER, "at" TIMESTAMPTZ NOT NULL, at_local TIMESTAMP NOT NULL, '
                    "at_ns TIMESTAMP_NS NOT NULL, on_day DATE NOT NULL)")  # AT is a keyword in DuckDB
        for i, text in EDGE_EVENTS:
            moment = edge_moment(text)
            local = moment.replace(tzinfo=None)
            con.execute("INSERT INTO events VALUES (?, ?, ?, ?::TIMESTAMP_NS, ?)", [i, moment, local, local, local.date()])
        con.execute("CREATE SCHEMA sales")
        con.execute('CREATE TABLE sales."Orders" ("OrderId" INTEGER, "Amount" DECIMAL(10,2), "PlacedAt" TIMESTAMP)')
        con.execute("INSERT INTO sales.Orders VALUES (1, 9.99, '2025-03-01 08:00:00'), (2, 100.00, '2025-03-02 08:00:00')")
        con.execute(f"CREATE TABLE big AS SELECT i::BIGINT AS id, TIMESTAMPTZ '2025-03-01 00:00:00+00' + "
                    f"to_seconds(i % 86400) AS at, md5(i::VARCHAR) AS label, ((i % 100000) / 100)::DECIMAL(12,2) AS amount "
                    f"FROM range(1, {BIG_ROWS + 1}) t(i)")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return ConnectionInfo("ds_duck_src", "duckdb", host=str(path))


def duck_rows(info: ConnectionInfo, sql: str) -> list[dict]:
    import duckdb

    con = duckdb.connect(info.host, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def test_duckdb_every_type_round_trips_exactly(duck, data_home):
    assert extract(duck, {"table": "typed"}, DAY, NEXT) == {"2025-03-01": 4}
    got = staged(data_home, DAY)
    types = {f.name: f.type for f in got.schema}
    assert types["amount"] == pa.decimal128(18, 4) and types["big"] == pa.decimal128(38, 10)
    assert types["huge"] == pa.decimal128(38, 0)
    assert types["happened_at"] == pa.timestamp("us")
    assert types["happened_tz"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32() and types["ratio"] == pa.float64() and types["flag"] == pa.bool_()
    assert types["small"] == pa.int16() and types["large"] == pa.int64() and types["id"] == pa.int32()
    assert pa.types.is_string(types["name"]) or pa.types.is_large_string(types["name"])
    assert pa.types.is_binary(types["payload"]) or pa.types.is_large_binary(types["payload"])
    assert by_id(got) == duck_rows(duck, "SELECT * FROM typed ORDER BY id")
    rows = by_id(got)
    assert rows[0]["amount"] == Decimal("12345678901234.5678")
    assert rows[0]["big"] == Decimal("1234567890123456789012345678.0123456789")
    assert rows[0]["huge"] == Decimal(170141183460469231731687303715884105727)
    assert rows[0]["name"] == UNICODE and rows[0]["big_text"] == BIG_TEXT and rows[0]["payload"] == ALL_BYTES
    # 23:59:59.999999+05 is 18:59:59.999999 UTC; the extremes and NULLs survive as they are.
    assert rows[1]["happened_tz"] == datetime(2025, 3, 1, 18, 59, 59, 999999, tzinfo=UTC)
    assert rows[1]["happened_at"] == datetime(1900, 1, 1, 0, 0, 0, 1) and rows[1]["day"] == date(1, 1, 1)
    assert rows[1]["name"] == "" and rows[1]["payload"] == b"" and rows[1]["large"] == -9_223_372_036_854_775_808
    assert all(v is None for k, v in rows[2].items() if k != "id")
    assert rows[3]["happened_at"] == datetime(9999, 12, 31, 23, 59, 59, 999999) and rows[3]["ratio"] == float("inf")
    assert rows[3]["big_text"] == "NULL"


def test_duckdb_columns_schema_and_names_in_any_case(duck, data_home):
    src = {"schema": "sales", "table": "orders", "columns": ["orderid", "Amount"], "incremental_column": "placedat"}
    assert extract(duck, src, DAY, NEXT) == {"2025-03-01": 1}
    got = staged(data_home, DAY)
    assert got.schema.names == ["OrderId", "Amount"]
    assert got.schema.field("Amount").type == pa.decimal128(10, 2)
    assert got.to_pylist() == [{"OrderId": 1, "Amount": Decimal("9.99")}]


@pytest.mark.parametrize("column", ["at", "at_local", "at_ns", "on_day"])
def test_duckdb_window_and_batch_days_cut_exactly_at_the_edges(duck, data_home, column):
    result = extract(duck, {"table": "events", "incremental_column": column}, DAY, date(2025, 3, 4), batch_days=2)
    assert result == {"2025-03-01": 3, "2025-03-03": 2}
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, SECOND_DAY))] == SECOND_BATCH
    assert Store(data_home / "store").batch_dates("raw", "out") == [DAY, SECOND_DAY]
    first = by_id(staged(data_home, DAY))
    assert first[0]["at"] == datetime(2025, 3, 1, tzinfo=UTC)  # the row exactly at from_date is in
    assert by_id(staged(data_home, SECOND_DAY))[-1]["at"] == datetime(2025, 3, 3, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize("column", ["at", "at_local", "on_day"])
def test_duckdb_query_mode_binds_the_window(duck, data_home, column):
    q = f'SELECT id, "{column}" FROM events WHERE "{column}" >= :from_date AND "{column}" < :to_date ORDER BY id;'
    extract(duck, {"query": q}, DAY, date(2025, 3, 4), batch_days=2)
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, SECOND_DAY))] == SECOND_BATCH


def test_duckdb_query_parameters_are_bound_values_not_sql_text(duck, data_home):
    q = ("SELECT :from_date AS f, :to_date AS t, :batch_date AS b, typeof(:from_date) AS ft, "
         "typeof(:batch_date) AS bt, :from_date::DATE AS cast_day, 'x::from_date' AS lit")
    extract(duck, {"query": q}, DAY, NEXT)
    got = staged(data_home, DAY)
    assert got.schema.field("f").type == pa.timestamp("us", tz="UTC") and got.schema.field("b").type == pa.date32()
    assert got.to_pylist() == [{
        "f": datetime(2025, 3, 1, tzinfo=UTC), "t": datetime(2025, 3, 2, tzinfo=UTC), "b": DAY,
        "ft": "TIMESTAMP WITH TIME ZONE", "bt": "DATE", "cast_day": DAY, "lit": "x::from_date"}]


def test_duckdb_query_mode_round_trips_every_type(duck, data_home):
    extract(duck, {"query": "SELECT * FROM typed WHERE happened_tz IS NULL OR :batch_date IS NOT NULL"}, DAY, NEXT)
    got = staged(data_home, DAY)
    assert got.schema.field("big").type == pa.decimal128(38, 10)
    assert got.schema.field("happened_tz").type == pa.timestamp("us", tz="UTC")
    assert by_id(got) == duck_rows(duck, "SELECT * FROM typed ORDER BY id")


def test_duckdb_streams_record_batches_of_chunk_rows(duck, data_home):
    batch = Batch(DAY, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    schema, batches = read_batches(duck, SqlSource(conn_id=duck.conn_id, table="big", incremental_column="at"),
                                   batch, 5000)
    sizes = [b.num_rows for b in batches]
    assert max(sizes) <= 5000 and len(sizes) >= BIG_ROWS // 5000 and sum(sizes) == BIG_ROWS
    assert schema.field("amount").type == pa.decimal128(12, 2)

    assert extract(duck, {"table": "big", "incremental_column": "at"}, DAY, NEXT) == {"2025-03-01": BIG_ROWS}
    got = staged(data_home, DAY)
    import pyarrow.compute as pc

    expected = duck_rows(duck, "SELECT sum(amount) AS s, count(DISTINCT label) AS n FROM big")[0]
    assert pc.sum(got["amount"]).as_py() == expected["s"]
    assert pc.count_distinct(got["label"]).as_py() == expected["n"]


def test_duckdb_a_stream_given_up_midway_releases_the_file(duck):
    batch = Batch(DAY, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    _, batches = read_batches(duck, SqlSource(conn_id=duck.conn_id, table="big"), batch, 1000)
    assert next(batches).num_rows == 1000
    batches.close()
    # A writer can open the file again (in another process, so no handle of this one is shared).
    code = f"import duckdb; duckdb.connect({duck.host!r}).close()"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0


def test_duckdb_file_is_only_read(duck, data_home):
    path = Path(duck.host)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    # A reader in another process keeps a shared (read-only) lock: the extract reads beside it.
    reader = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys, time; c = duckdb.connect({duck.host!r}, read_only=True); "
                               "print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "open"
        assert extract(duck, {"table": "events", "incremental_column": "at"}, DAY, NEXT) == {"2025-03-01": 1}
        with pytest.raises(StepFailed) as err:
            extract(duck, {"query": "CREATE TABLE sneaky AS SELECT :batch_date AS d"}, DAY, NEXT)
        assert "read-only" in str(err.value) and "'ds_duck_src'" in str(err.value)
        leak = data_home / "leak.csv"
        with pytest.raises(StepFailed) as err:
            extract(duck, {"query": f"COPY (SELECT :batch_date) TO '{leak}'"}, DAY, NEXT)
        assert "'ds_duck_src'" in str(err.value) and not leak.exists()
    finally:
        reader.kill()
        reader.wait()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert not list(path.parent.glob("*.wal"))


WRITER = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(float(sys.argv[2]))"


def test_duckdb_waits_for_a_writer_then_reads(duck, data_home, monkeypatch):
    from dagspec.sources import duckdb_source

    monkeypatch.setattr(duckdb_source, "LOCK_WAIT_SECONDS", 60)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, duck.host, "2"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert extract(duck, {"table": "events", "incremental_column": "at"}, DAY, NEXT) == {"2025-03-01": 1}
        assert time.monotonic() - started > 0.5  # it did wait for the writer
    finally:
        writer.kill()
        writer.wait()


def test_duckdb_a_writer_that_keeps_the_lock_gives_one_clear_line(duck, data_home, monkeypatch):
    from dagspec.sources import duckdb_source

    monkeypatch.setattr(duckdb_source, "LOCK_WAIT_SECONDS", 1)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, duck.host, "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        with pytest.raises(StepFailed) as err:
            extract(duck, {"table": "events"}, DAY, NEXT)
    finally:
        writer.kill()
        writer.wait()
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "'ds_duck_src'" in message and "locked by a writing process" in message


def test_duckdb_connection_forms(duck, data_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DS_DUCK_URI", f"duckdb://{duck.host}")
    uri = env_resolver("ds_duck_uri")
    assert (uri.conn_type, uri.host) == ("duckdb", duck.host)
    extra = ConnectionInfo("ds_duck_extra", "duckdb", extra={"path": duck.host})
    airflow_form = ConnectionInfo("ds_duck_af", "duckdb", host="", schema=duck.host)  # Airflow's duckdb:////path
    for info in (uri, extra, airflow_form):
        assert database_file(info) == duck.host
        assert extract(info, {"table": "events", "incremental_column": "on_day"}, DAY, NEXT) == {"2025-03-01": 1}
    with pytest.raises(ValueError, match="'ds_nowhere'.*host or extra 'path'"):
        database_file(ConnectionInfo("ds_nowhere", "duckdb"))


def _duck_errors(duck, tmp_path):
    not_duckdb = tmp_path / "not.duckdb"
    not_duckdb.write_bytes(b"SQLite format 3\x00" + bytes(4096))
    missing = tmp_path / "gone" / "nothing.duckdb"
    elsewhere = ConnectionInfo("ds_duck_src", "duckdb", host=str(missing))
    garbage = ConnectionInfo("ds_duck_src", "duckdb", host=str(not_duckdb))
    return [
        (elsewhere, {"table": "typed"}, rf"DuckDB file '{re.escape(str(missing))}' does not exist"),
        (garbage, {"table": "typed"}, r"(?i)not a valid DuckDB database"),
        (duck, {"table": "no_such_table"}, r"table 'no_such_table' does not exist"),
        (duck, {"schema": "nope", "table": "typed"}, r"table 'nope.typed' does not exist"),
        (duck, {"table": "typed", "columns": ["id", "nope"]}, r"no column\(s\) 'nope'; it has id, amount"),
        (duck, {"table": "typed", "incremental_column": "nope"}, r"no column\(s\) 'nope'"),
        (duck, {"query": "SELECT id, nope FROM typed WHERE happened_tz >= :from_date"}, r"Binder Error.*nope"),
        (duck, {"query": "SELECT * FROM no_such_table WHERE :batch_date IS NOT NULL"}, r"no_such_table"),
    ]


@pytest.mark.parametrize("case", range(8), ids=["missing-file", "not-duckdb", "table", "schema", "column",
                                                 "incremental-column", "query", "query-table"])
def test_duckdb_errors_are_one_line_naming_the_connection(duck, data_home, tmp_path, case):
    info, source, pattern = _duck_errors(duck, tmp_path)[case]
    with pytest.raises(StepFailed) as err:
        extract(info, source, DAY, NEXT)
    message = str(err.value)
    assert "'ds_duck_src'" in message and len(message.splitlines()) == 1, message
    assert re.search(pattern, message), message
    assert Store(data_home / "store").batch_dates("raw", "out") == []
    assert not (tmp_path / "gone").exists()  # a missing file is reported, never created


# ---------------------------------------------------------------- SQLite

LITE_ROWS = [
    (1, "1234.5678", "2025-03-01 00:00:00", "2025-03-01", UNICODE, "short", ALL_BYTES, BIG_TEXT, 1, 0.1, -32768,
     9_007_199_254_740_993),
    (2, -0.0001, "1900-01-01 00:00:00.000001", "0001-01-01", "", "", b"", "", 0, -1.5e300, 32767,
     -9_223_372_036_854_775_808),
    (3, None, None, None, None, None, None, None, None, None, None, None),
    (4, 0, "9999-12-31 23:59:59.999999", "9999-12-31", "\u00a0 lead and trail \u00a0", "x" * 40, b"\x00", "NULL", 1,
     float("inf"), 0, 0),
]


@pytest.fixture(scope="module")
def lite(tmp_path_factory) -> ConnectionInfo:
    path = tmp_path_factory.mktemp("lite") / "source.db"
    with sqlite3.connect(path) as con:
        con.execute("""CREATE TABLE typed (
            id INTEGER PRIMARY KEY, amount NUMERIC(12,4), happened_at DATETIME, day DATE, name TEXT,
            note VARCHAR(40), payload BLOB, big_text TEXT, flag BOOLEAN, ratio DOUBLE, small SMALLINT, large BIGINT)""")
        con.executemany("INSERT INTO typed VALUES (" + ", ".join(["?"] * 12) + ")", LITE_ROWS)
        # The same instants in sqlite's own text format and in SQLAlchemy's (always with microseconds).
        con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, at DATETIME NOT NULL, at_micro DATETIME NOT NULL, "
                    "on_day DATE NOT NULL)")
        for i, text in EDGE_EVENTS:
            moment = edge_moment(text).replace(tzinfo=None)
            con.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (
                i, moment.isoformat(sep=" "), moment.strftime("%Y-%m-%d %H:%M:%S.%f"), moment.date().isoformat()))
    return ConnectionInfo("ds_lite_src", "sqlite", host=str(path))


def test_sqlite_every_type_round_trips_exactly(lite, data_home):
    assert extract(lite, {"table": "typed"}, DAY, NEXT) == {"2025-03-01": 4}
    got = staged(data_home, DAY)
    types = {f.name: f.type for f in got.schema}
    assert types["amount"] == pa.decimal128(12, 4)
    assert types["happened_at"] == pa.timestamp("us") and types["day"] == pa.date32()
    assert types["name"] == pa.large_string() and types["note"] == pa.large_string()
    assert types["payload"] == pa.large_binary() and types["flag"] == pa.bool_()
    assert types["ratio"] == pa.float64() and types["small"] == pa.int16() and types["large"] == pa.int64()
    rows = by_id(got)
    assert [r["amount"] for r in rows] == [Decimal("1234.5678"), Decimal("-0.0001"), None, Decimal("0.0000")]
    assert [r["happened_at"] for r in rows] == [
        datetime(2025, 3, 1), datetime(1900, 1, 1, 0, 0, 0, 1), None, datetime(9999, 12, 31, 23, 59, 59, 999999)]
    assert [r["day"] for r in rows] == [DAY, date(1, 1, 1), None, date(9999, 12, 31)]
    assert [r["flag"] for r in rows] == [True, False, None, True]
    with sqlite3.connect(lite.host) as con:  # text, bytes and numbers exactly as SQLite holds them
        raw = con.execute("SELECT id, name, note, payload, big_text, ratio, small, large FROM typed ORDER BY id").fetchall()
    assert [tuple(r[k] for k in ("id", "name", "note", "payload", "big_text", "ratio", "small", "large"))
            for r in rows] == raw
    assert rows[0]["name"] == UNICODE and rows[0]["big_text"] == BIG_TEXT and rows[0]["payload"] == ALL_BYTES
    assert all(v is None for k, v in rows[2].items() if k != "id")


@pytest.mark.parametrize("column", ["at", "at_micro", "on_day"])
def test_sqlite_window_and_batch_days_cut_exactly_at_the_edges(lite, data_home, column):
    result = extract(lite, {"table": "events", "incremental_column": column}, DAY, date(2025, 3, 4), batch_days=2)
    assert result == {"2025-03-01": 3, "2025-03-03": 2}
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, SECOND_DAY))] == SECOND_BATCH


@pytest.mark.parametrize("column", ["at", "at_micro"])
def test_sqlite_query_mode_binds_the_window(lite, data_home, column):
    q = f"SELECT id, {column} FROM events WHERE {column} >= :from_date AND {column} < :to_date"
    extract(lite, {"query": q}, DAY, date(2025, 3, 4), batch_days=2)
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, SECOND_DAY))] == SECOND_BATCH


def _lite_errors(lite, tmp_path):
    missing = tmp_path / "gone.db"
    return [
        (ConnectionInfo("ds_lite_src", "sqlite", host=str(missing)), {"table": "typed"},
         rf"SQLite file '{re.escape(str(missing))}' does not exist"),
        (lite, {"table": "no_such_table"}, r"table 'no_such_table' does not exist"),
        (lite, {"query": "SELECT id, nope FROM typed WHERE happened_at >= :from_date"}, r"no such column: nope"),
        (lite, {"query": "SELEC id FROM typed"}, r"syntax error"),
    ]


@pytest.mark.parametrize("case", range(4), ids=["missing-file", "table", "query", "syntax"])
def test_sqlite_errors_are_one_line_naming_the_connection(lite, data_home, tmp_path, case):
    info, source, pattern = _lite_errors(lite, tmp_path)[case]
    with pytest.raises(StepFailed) as err:
        extract(info, source, DAY, NEXT)
    message = str(err.value)
    assert "'ds_lite_src'" in message and len(message.splitlines()) == 1, message
    assert re.search(pattern, message), message
    assert Store(data_home / "store").batch_dates("raw", "out") == []
    assert not (tmp_path / "gone.db").exists()  # sqlite3 would have made an empty one


def test_sqlite_uri_connection(lite, data_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DS_LITE_URI", f"sqlite://{lite.host}")
    info = parse_connection("ds_lite_uri", os.environ["AIRFLOW_CONN_DS_LITE_URI"])
    assert info.host == lite.host
    assert extract(info, {"table": "events", "incremental_column": "at"}, DAY, NEXT) == {"2025-03-01": 1}
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == [2]  # '2025-03-01 00:00:00', exactly from_date
