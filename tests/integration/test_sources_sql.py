"""Extract from real PostgreSQL and MariaDB into staged Parquet: exact types, window edges, re-runs, errors, kills.

Each module run creates its own databases (ds_extract_t_<pid>) and drops them at the end. The
expected values come straight from the database through its own driver, not through dagspec.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import need
from support.pg_databases import pg_admin as _pg_admin
from support.pg_databases import scratch_database

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.errors import StepFailed
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
from dagspec.store import Store

UTC = UTC
DB = f"ds_extract_t_{os.getpid()}"
SECRET = "pw-Zq8!never-in-logs"
ROOT = Path(__file__).resolve().parents[2]

UNICODE = "naïve café ✓ — 漢字 かな 한국어 עברית العربية 🎉👩‍👩‍👧 \u0301e\u200d 'quote' \"dq\" \\back\\ \t tab\nline"
BIG_TEXT = ("ünïcode-" * 131_072)  # 1 MiB of multi-byte text
ALL_BYTES = bytes(range(256)) * 64


# ---------------------------------------------------------------- servers and databases


@pytest.fixture(scope="module")
def pg():
    with scratch_database(DB, "ENCODING 'UTF8' TEMPLATE template0"):
        with _pg_admin(DB) as c:
            c.execute("SET TimeZone = 'UTC'")
            _pg_fixtures(c)
        yield ConnectionInfo("ds_pg_src", "postgres", "127.0.0.1", 5432, "postgres", None, DB)


def _pg_fixtures(c) -> None:
    c.execute("""CREATE TABLE typed (
        id integer PRIMARY KEY, amount numeric(18,4), big numeric(38,10), happened_at timestamp(6),
        happened_tz timestamptz, day date, name text, note varchar(40), payload bytea, big_text text,
        flag boolean, ratio double precision, small smallint, large bigint)""")
    rows = [
        (1, Decimal("12345678901234.5678"), Decimal("1234567890123456789012345678.0123456789"),
         datetime(2025, 3, 1, 0, 0, 0), datetime(2025, 3, 1, 0, 0, tzinfo=UTC), date(2025, 3, 1),
         UNICODE, "short", ALL_BYTES, BIG_TEXT, True, 0.1, -32768, 9_007_199_254_740_993),
        (2, Decimal("-0.0001"), Decimal("-9999999999999999999999999999.9999999999"),
         datetime(1900, 1, 1, 0, 0, 0, 1), datetime(2025, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5))),
         date(1, 1, 1), "", "", b"", "", False, -1.5e300, 32767, -9_223_372_036_854_775_808),
        (3, None, None, None, None, None, None, None, None, None, None, None, None, None),
        (4, Decimal("0"), Decimal("0E-10"), datetime(9999, 12, 31, 23, 59, 59, 999999),
         datetime(1970, 1, 1, tzinfo=UTC), date(9999, 12, 31), "\u00a0 lead and trail \u00a0", "x" * 40, b"\x00",
         "NULL", True, float("inf"), 0, 0),
    ]
    with c.cursor() as cur:
        cur.executemany("INSERT INTO typed VALUES (" + ", ".join(["%s"] * 14) + ")", rows)
    # Columns DuckDB's scanner would turn into DOUBLE: this table takes the exact fallback.
    c.execute("CREATE TABLE wide_numbers (id int PRIMARY KEY, free numeric, wide numeric(50,12), amount numeric(10,2))")
    c.execute("INSERT INTO wide_numbers VALUES (1, 1.000000000000000000001, "
              "12345678901234567890123456789012345678.123456789012, 1.5),"
              " (2, -123456789012345678901234567890123456789012345678901234567890, 0, NULL), (3, NULL, NULL, 0)")
    c.execute("CREATE TABLE events (id int PRIMARY KEY, at timestamptz NOT NULL, at_local timestamp NOT NULL, "
              "on_day date NOT NULL)")
    c.execute("INSERT INTO events SELECT id, at, at AT TIME ZONE 'UTC', (at AT TIME ZONE 'UTC')::date FROM (VALUES "
              + ", ".join(f"({i}, timestamptz '{t}')" for i, t in EDGE_EVENTS) + ") v(id, at)")
    # The same rows with an unconstrained NUMERIC, which sends table mode through COPY instead of the scanner.
    c.execute("CREATE TABLE events_exact AS SELECT *, id::numeric / 3 AS third FROM events")
    c.execute("CREATE TABLE big (id bigint PRIMARY KEY, at timestamptz NOT NULL, label text NOT NULL, amount numeric(12,2))")
    c.execute("INSERT INTO big SELECT g, timestamptz '2025-03-01 00:00:00+00' + (g % 86400) * interval '1 second', "
              "md5(g::text) || repeat('x', 40), (g % 100000) / 100.0 FROM generate_series(1, 600000) g")


# Rows on and around the edges of 2025-03-01 .. 2025-03-04 (batch_days=2: [03-01, 03-03) and [03-03, 03-04)).
EDGE_EVENTS = [
    (1, "2025-02-28 23:59:59.999999+00"),  # just before the window
    (2, "2025-03-01 00:00:00+00"),  # exactly from_date of the first batch
    (3, "2025-03-02 12:00:00+00"),
    (4, "2025-03-02 23:59:59.999999+00"),  # last instant of the first batch
    (5, "2025-03-03 00:00:00+00"),  # exactly to_date of the first batch = from_date of the second
    (6, "2025-03-03 23:59:59.999999+00"),
    (7, "2025-03-04 00:00:00+00"),  # exactly to_date of the window: excluded
]
FIRST_BATCH, SECOND_BATCH = [2, 3, 4], [5, 6]


def _my_admin(database: str | None = None):
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database,
                           charset="utf8mb4", autocommit=True, connect_timeout=5)


@pytest.fixture(scope="module")
def my():
    import pymysql

    try:
        admin = _my_admin()
    except pymysql.Error as exc:
        need(False, f"MariaDB on 127.0.0.1:3306 (user root): {exc}")
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        cur.execute("DROP USER IF EXISTS 'ds_extract_user'@'%'")
        cur.execute("CREATE USER 'ds_extract_user'@'%' IDENTIFIED BY 'the-right-one'")
    try:
        c = _my_admin(DB)
        with c.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            _my_fixtures(cur)
        c.close()
        yield ConnectionInfo("ds_my_src", "mysql", "127.0.0.1", 3306, "root", None, DB)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
            cur.execute("DROP USER IF EXISTS 'ds_extract_user'@'%'")
        admin.close()


def _my_fixtures(cur) -> None:
    cur.execute("""CREATE TABLE typed (
        id int PRIMARY KEY, amount decimal(18,4), big decimal(38,10), happened_at datetime(6),
        happened_tz timestamp(6) NULL, day date, name text, note varchar(40), payload blob, big_text longtext,
        ratio double, small smallint, large bigint)""")
    rows = [
        (1, Decimal("12345678901234.5678"), Decimal("1234567890123456789012345678.0123456789"),
         datetime(2025, 3, 1), datetime(2025, 3, 1), date(2025, 3, 1), UNICODE, "short", ALL_BYTES, BIG_TEXT,
         0.1, -32768, 9_007_199_254_740_993),
        (2, Decimal("-0.0001"), Decimal("-9999999999999999999999999999.9999999999"), datetime(1900, 1, 1, 0, 0, 0, 1),
         datetime(2038, 1, 19, 3, 14, 7, 999999), date(1000, 1, 1), "", "", b"", "", -1.5e300, 32767,
         -9_223_372_036_854_775_808),
        (3, None, None, None, None, None, None, None, None, None, None, None, None),
    ]
    cur.executemany("INSERT INTO typed VALUES (" + ", ".join(["%s"] * 13) + ")", rows)
    # Types beyond `typed`, for the two table readers to agree on.
    cur.execute("""CREATE TABLE more_types (
        id int PRIMARY KEY, flag tinyint(1), tiny tinyint, utiny tinyint unsigned, medium mediumint,
        ubig bigint unsigned, y year, f float, e enum('a', 'b'), fixed char(3), vb varbinary(8), j json,
        d6 datetime, ts0 timestamp NULL)""")
    cur.execute("INSERT INTO more_types VALUES (1, 1, -128, 255, -8388608, 18446744073709551615, 2025, 1.5, 'b', "
                "'abc', X'00FF', '{\"a\": [1, 2]}', '2025-03-01 12:34:56', '2025-03-01 00:00:01'), "
                "(2, 0, 127, 0, 8388607, 0, 1901, -0.25, 'a', '', X'', '[]', '1000-01-01 00:00:00', "
                "'1970-01-01 00:00:01'), (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
                "NULL)")
    cur.execute("CREATE TABLE wide_numbers (id int PRIMARY KEY, wide decimal(50,12), amount decimal(10,2))")
    cur.execute("INSERT INTO wide_numbers VALUES (1, 12345678901234567890123456789012345678.123456789012, 1.50), "
                "(2, NULL, NULL)")
    cur.execute("CREATE TABLE events (id int PRIMARY KEY, at_local datetime(6) NOT NULL, at timestamp(6) NOT NULL, "
                "on_day date NOT NULL)")
    for i, t in EDGE_EVENTS:
        moment = datetime.fromisoformat(t.replace("+00", "+00:00")).replace(tzinfo=None)
        cur.execute("INSERT INTO events VALUES (%s, %s, %s, %s)", (i, moment, moment, moment.date()))


# ---------------------------------------------------------------- running extract


def pipeline(source: dict, batch_days: int = 1, table: str = "out") -> Pipeline:
    return Pipeline.model_validate({
        "dag_id": "ds_extract_test", "start_date": "2025-01-01", "batch_days": batch_days,
        "steps": [{"id": "extract", "kind": "extract", "source": source, "chunk_rows": 1000,
                   "target": {"schema": "raw", "table": table}}],
    })


def resolver_for(*infos: ConnectionInfo):
    by_id = {i.conn_id: i for i in infos}
    return lambda conn_id: by_id[conn_id] if conn_id in by_id else env_resolver(conn_id)


def extract(info: ConnectionInfo, source: dict, start: date, end: date, batch_days: int = 1, table: str = "out"):
    p = pipeline({"conn_id": info.conn_id, **source}, batch_days, table)
    return run_step(p, "extract", datetime.combine(start, datetime.min.time(), UTC),
                    datetime.combine(end, datetime.min.time(), UTC), resolver=resolver_for(info))


def staged(home: Path, day: date, table: str = "out") -> pa.Table:
    part = Store(home / "store").partition("raw", table, day)
    return pq.ParquetFile(part.files[0]).read() if len(part.files) == 1 else pa.concat_tables(
        pq.read_table(f) for f in part.files)


def by_id(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def source_rows(conn, sql: str) -> list[dict]:
    with conn.cursor() as cur:
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


DAY = date(2025, 3, 1)


# ---------------------------------------------------------------- PostgreSQL


def test_pg_every_type_round_trips_exactly(pg, data_home):
    assert extract(pg, {"table": "typed"}, DAY, DAY + timedelta(days=1)) == {"2025-03-01": 4}
    got = staged(data_home, DAY)
    types = {f.name: f.type for f in got.schema}
    assert types["amount"] == pa.decimal128(18, 4) and types["big"] == pa.decimal128(38, 10)
    assert types["happened_at"] == pa.timestamp("us")
    assert types["happened_tz"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32() and types["ratio"] == pa.float64() and types["flag"] == pa.bool_()
    assert types["small"] == pa.int16() and types["large"] == pa.int64() and types["id"] == pa.int32()
    assert pa.types.is_binary(types["payload"]) or pa.types.is_large_binary(types["payload"])
    with _pg_admin(pg.schema) as c:
        expected = source_rows(c, "SELECT * FROM typed ORDER BY id")
    assert by_id(got) == expected
    assert by_id(got)[0]["big_text"] == BIG_TEXT and by_id(got)[0]["payload"] == ALL_BYTES


def test_pg_numbers_wider_than_decimal128_stay_exact_as_text(pg, data_home):
    extract(pg, {"table": "wide_numbers"}, DAY, DAY + timedelta(days=1))
    got = staged(data_home, DAY)
    assert got.schema.field("amount").type == pa.decimal128(10, 2)
    assert pa.types.is_large_string(got.schema.field("free").type)
    assert [r["free"] for r in by_id(got)] == [
        "1.000000000000000000001", "-123456789012345678901234567890123456789012345678901234567890", None]
    assert by_id(got)[0]["wide"] == "12345678901234567890123456789012345678.123456789012"


def test_pg_query_mode_binds_the_window_and_keeps_types(pg, data_home):
    query = "SELECT id, amount, happened_tz, name, payload FROM typed WHERE happened_tz >= :from_date AND happened_tz < :to_date"
    extract(pg, {"query": query}, DAY, DAY + timedelta(days=1))
    got = staged(data_home, DAY)
    assert got.schema.field("amount").type == pa.decimal128(18, 4)
    assert got.schema.field("happened_tz").type == pa.timestamp("us", tz="UTC")
    # Row 2 is 2025-03-01 23:59:59.999999+05 = 18:59:59.999999 UTC: inside the day.
    assert [r["id"] for r in by_id(got)] == [1, 2]
    assert by_id(got)[0]["name"] == UNICODE and by_id(got)[0]["payload"] == ALL_BYTES


def test_pg_query_mode_round_trips_every_type(pg, data_home):
    extract(pg, {"query": "SELECT * FROM typed WHERE :from_date < :to_date;"}, DAY, DAY + timedelta(days=1))
    got = staged(data_home, DAY)
    with _pg_admin(pg.schema) as c:
        expected = source_rows(c, "SELECT * FROM typed ORDER BY id")
    assert by_id(got) == expected
    assert got.schema.field("big").type == pa.decimal128(38, 10)
    assert got.schema.field("happened_at").type == pa.timestamp("us")


def test_pg_query_mode_with_types_copy_cannot_carry_still_works(pg, data_home):
    q = "SELECT id, ARRAY[id, id] AS pair, interval '1 day' * id AS span, free FROM wide_numbers WHERE :batch_date IS NOT NULL"
    extract(pg, {"query": q}, DAY, DAY + timedelta(days=1))
    rows = by_id(staged(data_home, DAY))
    assert [r["pair"] for r in rows] == [[1, 1], [2, 2], [3, 3]]
    assert rows[0]["free"] == "1.000000000000000000001" and rows[2]["free"] is None


@pytest.mark.parametrize("table", ["events", "events_exact"])
@pytest.mark.parametrize("column", ["at", "at_local", "on_day"])
def test_pg_window_and_batch_days_cut_exactly_at_the_edges(pg, data_home, column, table):
    result = extract(pg, {"table": table, "incremental_column": column}, DAY, date(2025, 3, 4), batch_days=2)
    if table == "events_exact":
        assert by_id(staged(data_home, DAY))[0]["third"] == "0.66666666666666666667"
    if column == "on_day":  # a date column compares by day: 03-02 23:59 and 03-03 23:59 are whole days in
        assert result == {"2025-03-01": 3, "2025-03-03": 2}
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, date(2025, 3, 3)))] == SECOND_BATCH
    assert Store(data_home / "store").batch_dates("raw", "out") == [DAY, date(2025, 3, 3)]


def test_pg_query_window_edges(pg, data_home):
    q = "SELECT id, at FROM events WHERE at >= :from_date AND at < :to_date"
    extract(pg, {"query": q}, DAY, date(2025, 3, 4), batch_days=2)
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, date(2025, 3, 3)))] == SECOND_BATCH


def test_pg_rerunning_a_date_replaces_exactly_it(pg, data_home):
    src = {"table": "events", "incremental_column": "at"}
    extract(pg, src, DAY, date(2025, 3, 3))
    other = (Path(Store(data_home / "store").partition("raw", "out", date(2025, 3, 2)).files[0])).read_bytes()
    with _pg_admin(pg.schema) as c:
        c.execute("INSERT INTO events VALUES (100, '2025-03-01 10:00:00+00', '2025-03-01 10:00:00', '2025-03-01')")
        c.execute("DELETE FROM events WHERE id = 2")
    try:
        extract(pg, src, DAY, DAY + timedelta(days=1))
        assert [r["id"] for r in by_id(staged(data_home, DAY))] == [100]
        assert Path(Store(data_home / "store").partition("raw", "out", date(2025, 3, 2)).files[0]).read_bytes() == other
    finally:
        with _pg_admin(pg.schema) as c:
            c.execute("DELETE FROM events WHERE id = 100")
            c.execute("INSERT INTO events VALUES (2, '2025-03-01 00:00:00+00', '2025-03-01 00:00:00', '2025-03-01')")


def _pg_errors(pg):
    nowhere = ConnectionInfo("ds_pg_src", "postgres", "127.0.0.1", 1, "postgres", SECRET, pg.schema)
    stranger = ConnectionInfo("ds_pg_src", "postgres", "127.0.0.1", 5432, "ds_extract_nobody", SECRET, pg.schema)
    ok = ConnectionInfo("ds_pg_src", "postgres", "127.0.0.1", 5432, "postgres", SECRET, pg.schema)
    return [
        ("unreachable", nowhere, {"table": "typed"}, r"(?i)connect|refused"),
        ("wrong credentials", stranger, {"table": "typed"}, r"ds_extract_nobody"),
        ("missing table", ok, {"table": "no_such_table"}, r"'no_such_table' does not exist"),
        ("missing column", ok, {"table": "typed", "columns": ["id", "nope"]}, r"no column\(s\) 'nope'"),
        ("query error", ok, {"query": "SELECT id, nope FROM typed WHERE happened_tz >= :from_date"}, r"nope"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["unreachable", "credentials", "table", "column", "query"])
def test_pg_errors_name_the_connection_never_the_password(pg, data_home, case):
    _, info, source, pattern = _pg_errors(pg)[case]
    with pytest.raises(StepFailed) as err:
        extract(info, source, DAY, DAY + timedelta(days=1))
    message = str(err.value)
    assert "'ds_pg_src'" in message and SECRET not in message, message
    assert len(message.splitlines()) == 1, message
    import re

    assert re.search(pattern, message), message
    assert Store(data_home / "store").batch_dates("raw", "out") == []


# ---------------------------------------------------------------- a killed extraction

KILLER = textwrap.dedent("""
    import json, sys, time
    from datetime import datetime, timezone
    import dagspec.stages.extract as extract_stage
    from dagspec.connections import ConnectionInfo, env_resolver
    from dagspec.runner import run_step
    from dagspec.spec.model import Pipeline

    info = ConnectionInfo(**json.loads(sys.argv[1]))
    signal_file = sys.argv[2]
    real = extract_stage.read_batches
    paced = sys.argv[3] == "stream"  # else DuckDB writes the part itself and the test kills it mid-COPY
    if sys.argv[3] == "stopped":  # as Airflow stops a task: SIGTERM, which its handler turns into an exception
        import signal

        def stop(signum, frame):
            raise SystemExit("task stopped (SIGTERM)")

        signal.signal(signal.SIGTERM, stop)

    def slow(*args, **kwargs):
        schema, batches = real(*args, **kwargs)

        def paced():
            for i, batch in enumerate(batches):
                yield batch
                if i == 300:  # well past the first row group: a part file is half written
                    open(signal_file, "w").close()
                    time.sleep(600)
        return schema, paced()

    if paced:
        extract_stage.read_batches = slow
    p = Pipeline.model_validate({"dag_id": "ds_extract_kill", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "chunk_rows": 1000,
         "source": {"conn_id": info.conn_id, "table": "big"}, "target": {"schema": "raw", "table": "out"}}]})
    run_step(p, "extract", datetime(2025, 3, 1, tzinfo=timezone.utc), datetime(2025, 3, 2, tzinfo=timezone.utc),
             resolver=lambda c: info if c == info.conn_id else env_resolver(c))
""")


@pytest.mark.parametrize("mode", ["stream", "direct", "stopped"])
def test_pg_killed_extraction_leaves_the_previous_partition_intact(pg, data_home, tmp_path, mode):
    """SIGKILL mid-write (streamed, or while DuckDB writes the part itself), or a stop (SIGTERM, raised as an
    exception in the main thread while DuckDB's COPY runs in another) that must remove what it had written."""
    with _pg_admin(pg.schema) as c:
        c.execute("CREATE TABLE big_small AS SELECT * FROM big WHERE id <= 1000")
        c.execute("ALTER TABLE big RENAME TO big_full")
        c.execute("ALTER TABLE big_small RENAME TO big")
    try:
        extract(pg, {"table": "big"}, DAY, DAY + timedelta(days=1))  # the previous, complete partition
    finally:
        with _pg_admin(pg.schema) as c:
            c.execute("DROP TABLE big")
            c.execute("ALTER TABLE big_full RENAME TO big")
    store = Store(data_home / "store")
    before = store.partition("raw", "out", DAY)
    before_bytes = {f: Path(f).read_bytes() for f in before.files}
    manifest = (Path(before.path) / "_manifest.json").read_text()

    signal_file = tmp_path / "half-written"
    info = json.dumps({"conn_id": pg.conn_id, "conn_type": "postgres", "host": pg.host, "port": pg.port,
                       "login": pg.login, "schema": pg.schema})
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, info, str(signal_file), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def half_written() -> bool:
        temp = [p for p in (data_home / "store/_tmp").iterdir() if p.name.startswith("raw.out.")]
        return any(f.stat().st_size > 0 for t in temp for f in t.glob("part-*.parquet"))

    try:
        deadline = time.monotonic() + 180
        while not (signal_file.exists() if mode == "stream" else half_written()):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the extraction never got going"
            time.sleep(0.1 if mode == "stream" else 0.002)
        if mode == "stopped":
            os.kill(proc.pid, signal.SIGTERM)
            output = proc.communicate(timeout=120)[0].decode()
            assert proc.returncode != 0 and "task stopped (SIGTERM)" in output, output[-3000:]
            assert not [p for p in (data_home / "store/_tmp").iterdir() if p.name.startswith("raw.out.")]
        else:
            os.kill(proc.pid, signal.SIGKILL)
            assert half_written(), "nothing half-written"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    after = store.partition("raw", "out", DAY)
    assert after.rows == 1000 and after.files == before.files
    assert {f: Path(f).read_bytes() for f in after.files} == before_bytes
    assert (Path(after.path) / "_manifest.json").read_text() == manifest
    assert store.batch_dates("raw", "out") == [DAY]
    assert store.dataset("raw", "out", [DAY]).count_rows() == 1000
    # What the killed run left is only an underscore folder, which readers of the table skip.
    import pyarrow.dataset as pads

    assert pads.dataset(data_home / "store/raw/out", format="parquet", partitioning="hive").count_rows() == 1000


def test_pg_large_table_streams_in_full(pg, data_home):
    extract(pg, {"table": "big", "incremental_column": "at"}, DAY, DAY + timedelta(days=1))
    got = staged(data_home, DAY)
    assert got.num_rows == 600_000
    with _pg_admin(pg.schema) as c:
        expected = c.execute("SELECT sum(amount), count(DISTINCT label) FROM big").fetchone()
    import pyarrow.compute as pc

    assert pc.sum(got["amount"]).as_py() == expected[0]
    assert pc.count_distinct(got["label"]).as_py() == expected[1]


@pytest.mark.parametrize("source", [{"table": "big"}, {"query": "SELECT * FROM big WHERE at >= :from_date"}],
                         ids=["table", "query"])
def test_pg_a_stream_given_up_midway_ends_its_server_sessions(pg, source):
    from dagspec.sources import read_batches
    from dagspec.spec.model import SqlSource
    from dagspec.windows import Batch

    batch = Batch(DAY, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    schema, batches = read_batches(pg, SqlSource(conn_id=pg.conn_id, **source), batch, 1000)
    assert next(batches).num_rows > 0
    batches.close()

    def sessions() -> int:
        with _pg_admin() as c:
            return c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = 'dagspec'",
                             [pg.schema]).fetchone()[0]

    deadline = time.monotonic() + 30
    while sessions() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sessions() == 0


# ---------------------------------------------------------------- DuckDB writing Parquet itself (local stores)


def both_ways(info: ConnectionInfo, source: dict, tmp_path: Path) -> tuple[pa.Table, pa.Table]:
    """The same scan read twice: streamed as Arrow batches (what S3/GCS stores get) and written by DuckDB (local)."""
    from dagspec.sources import read_batches
    from dagspec.spec.model import SqlSource
    from dagspec.windows import Batch

    batch = Batch(DAY, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
    schema, streamed = read_batches(info, SqlSource(conn_id=info.conn_id, **source), batch, 1000)
    streamed_table = pa.Table.from_batches(list(streamed), schema)
    schema_again, direct = read_batches(info, SqlSource(conn_id=info.conn_id, **source), batch, 1000)
    assert schema_again == schema and direct.write_parquet is not None
    direct.write_parquet(str(tmp_path / "direct.parquet"))
    return streamed_table, pq.read_table(tmp_path / "direct.parquet")


def test_pg_duckdb_written_parquet_equals_the_streamed_batches(pg, tmp_path):
    streamed, direct = both_ways(pg, {"table": "typed"}, tmp_path)
    assert direct.schema.equals(streamed.schema, check_metadata=False)
    assert direct.to_pylist() == streamed.to_pylist()  # same rows, same order
    assert streamed.num_rows == 4


def test_pg_types_duckdb_would_store_differently_stream_through_arrow(pg, data_home):
    from dagspec.sources import read_batches
    from dagspec.spec.model import SqlSource
    from dagspec.windows import Batch

    with _pg_admin(pg.schema) as c:
        c.execute("CREATE TABLE odd_types AS SELECT 1 AS id, '6f0b7b4e-33a7-4c1e-9a47-3a1f0d0c2b11'::uuid AS key")
    try:
        batch = Batch(DAY, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
        _, scan = read_batches(pg, SqlSource(conn_id=pg.conn_id, table="odd_types"), batch, 1000)
        assert scan.write_parquet is None
        scan.close()
        assert extract(pg, {"table": "odd_types"}, DAY, DAY + timedelta(days=1)) == {"2025-03-01": 1}
        row = by_id(staged(data_home, DAY))[0]
        assert str(row["key"]) == "6f0b7b4e-33a7-4c1e-9a47-3a1f0d0c2b11" or row["key"] == bytes.fromhex(
            "6f0b7b4e33a74c1e9a473a1f0d0c2b11")
    finally:
        with _pg_admin(pg.schema) as c:
            c.execute("DROP TABLE odd_types")


def test_pg_duckdb_written_partition_is_checksummed_and_a_rerun_holds_the_same_rows(pg, data_home):
    """The scanner reads ctid ranges in parallel, so the order of rows in the file may differ between runs
    (a single-threaded scan keeps it, measured 1.7x slower on lineitem); the rows themselves may not."""
    import hashlib

    extract(pg, {"table": "big", "incremental_column": "at"}, DAY, DAY + timedelta(days=1))
    store = Store(data_home / "store")
    first = store.partition("raw", "out", DAY)
    manifest = json.loads((Path(first.path) / "_manifest.json").read_text())
    assert len(first.files) == 1 and first.rows == 600_000 == pq.read_metadata(first.files[0]).num_rows
    assert manifest["files"][0]["sha256"] == hashlib.sha256(Path(first.files[0]).read_bytes()).hexdigest()
    assert manifest["files"][0]["bytes"] == Path(first.files[0]).stat().st_size
    before = staged(data_home, DAY).sort_by("id")
    extract(pg, {"table": "big", "incremental_column": "at"}, DAY, DAY + timedelta(days=1))
    assert staged(data_home, DAY).sort_by("id").equals(before)


# ---------------------------------------------------------------- MariaDB


def test_my_every_type_round_trips_exactly(my, data_home):
    assert extract(my, {"table": "typed"}, DAY, DAY + timedelta(days=1)) == {"2025-03-01": 3}
    got = staged(data_home, DAY)
    types = {f.name: f.type for f in got.schema}
    assert types["amount"] == pa.decimal128(18, 4) and types["big"] == pa.decimal128(38, 10)
    assert types["happened_at"] == pa.timestamp("us")
    assert types["happened_tz"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32() and types["ratio"] == pa.float64()
    c = _my_admin(my.schema)
    with c.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
    expected = source_rows(c, "SELECT * FROM typed ORDER BY id")
    c.close()
    for row in expected:
        row["happened_tz"] = row["happened_tz"] and row["happened_tz"].replace(tzinfo=UTC)
    assert by_id(got) == expected
    assert by_id(got)[0]["name"] == UNICODE and by_id(got)[0]["payload"] == ALL_BYTES


def test_my_wide_decimals_stay_exact(my, data_home):
    extract(my, {"table": "wide_numbers"}, DAY, DAY + timedelta(days=1))
    got = by_id(staged(data_home, DAY))
    assert got[0]["wide"] == "12345678901234567890123456789012345678.123456789012"
    assert got[0]["amount"] == Decimal("1.50") and got[1]["wide"] is None


def test_my_query_mode_keeps_types(my, data_home):
    q = "SELECT id, amount, happened_tz, name, payload FROM typed WHERE happened_at >= :from_date AND happened_at < :to_date"
    extract(my, {"query": q}, DAY, DAY + timedelta(days=1))
    got = staged(data_home, DAY)
    assert got.schema.field("amount").type == pa.decimal128(18, 4)
    assert got.schema.field("happened_tz").type == pa.timestamp("us", tz="UTC")
    rows = by_id(got)
    assert [r["id"] for r in rows] == [1]
    assert rows[0]["name"] == UNICODE and rows[0]["payload"] == ALL_BYTES
    assert rows[0]["happened_tz"] == datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("column", ["at", "at_local"])
def test_my_window_and_batch_days_cut_exactly_at_the_edges(my, data_home, column):
    extract(my, {"table": "events", "incremental_column": column}, DAY, date(2025, 3, 4), batch_days=2)
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, date(2025, 3, 3)))] == SECOND_BATCH


def test_my_query_window_edges(my, data_home):
    q = "SELECT id FROM events WHERE at_local >= :from_date AND at_local < :to_date"
    extract(my, {"query": q}, DAY, date(2025, 3, 4), batch_days=2)
    assert [r["id"] for r in by_id(staged(data_home, DAY))] == FIRST_BATCH
    assert [r["id"] for r in by_id(staged(data_home, date(2025, 3, 3)))] == SECOND_BATCH


def test_my_rerunning_a_date_replaces_exactly_it(my, data_home):
    src = {"table": "events", "incremental_column": "at"}
    extract(my, src, DAY, date(2025, 3, 3))
    other = Path(Store(data_home / "store").partition("raw", "out", date(2025, 3, 2)).files[0]).read_bytes()
    c = _my_admin(my.schema)
    with c.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("INSERT INTO events VALUES (100, '2025-03-01 10:00:00', '2025-03-01 10:00:00', '2025-03-01')")
        cur.execute("DELETE FROM events WHERE id = 2")
    try:
        extract(my, src, DAY, DAY + timedelta(days=1))
        assert [r["id"] for r in by_id(staged(data_home, DAY))] == [100]
        assert Path(Store(data_home / "store").partition("raw", "out", date(2025, 3, 2)).files[0]).read_bytes() == other
    finally:
        with c.cursor() as cur:
            cur.execute("DELETE FROM events WHERE id = 100")
            cur.execute("INSERT INTO events VALUES (2, '2025-03-01 00:00:00', '2025-03-01 00:00:00', '2025-03-01')")
        c.close()


def _my_errors(my):
    nowhere = ConnectionInfo("ds_my_src", "mysql", "127.0.0.1", 1, "root", SECRET, my.schema)
    wrong = ConnectionInfo("ds_my_src", "mysql", "127.0.0.1", 3306, "ds_extract_user", SECRET, my.schema)
    ok = ConnectionInfo("ds_my_src", "mysql", "127.0.0.1", 3306, "root", None, my.schema)
    return [
        (nowhere, {"table": "typed"}, r"(?i)can't connect|refused"),
        (wrong, {"table": "typed"}, r"(?i)access denied"),
        (ok, {"table": "no_such_table"}, r"'no_such_table' does not exist"),
        (ok, {"table": "typed", "columns": ["id", "nope"]}, r"no column\(s\) 'nope'"),
        (ok, {"query": "SELECT id, nope FROM typed WHERE happened_at >= :from_date"}, r"nope"),
    ]


@pytest.mark.parametrize("case", range(5), ids=["unreachable", "credentials", "table", "column", "query"])
def test_my_errors_name_the_connection_never_the_password(my, data_home, case):
    info, source, pattern = _my_errors(my)[case]
    with pytest.raises(StepFailed) as err:
        extract(info, source, DAY, DAY + timedelta(days=1))
    message = str(err.value)
    assert "'ds_my_src'" in message and SECRET not in message, message
    assert len(message.splitlines()) == 1, message
    import re

    assert re.search(pattern, message), message


def _both_mysql_readers(my, table: str):
    from dagspec.sources import mysql as reader
    from dagspec.spec.model import SqlSource

    source = SqlSource(conn_id=my.conn_id, table=table)
    database, by_name = reader.catalog(my, source)
    columns = list(by_name.values())
    tables = []
    for read in (reader._over_the_wire, reader._duckdb_scan):
        schema, batches = read(my, database, source, columns, (), 1000)
        tables.append(pa.Table.from_batches(list(batches), schema))
    return tables


@pytest.mark.parametrize("table", ["typed", "more_types"])
def test_my_text_protocol_reader_agrees_with_duckdbs_scanner(my, table):
    """Table mode reads MySQL's text protocol (mysql_wire); DuckDB's scanner (binary protocol) is the
    reference: the same schema and the same values, type for type."""
    wire, scanner = _both_mysql_readers(my, table)
    assert wire.schema.equals(scanner.schema), f"{wire.schema}\n!=\n{scanner.schema}"
    assert by_id(wire) == by_id(scanner)
    assert wire.num_rows == {"typed": 3, "more_types": 3}[table]


def test_my_a_stream_given_up_midway_ends_its_server_session(my):
    from dagspec.sources import read_batches
    from dagspec.spec.model import SqlSource
    from dagspec.windows import Batch

    c = _my_admin(my.schema)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE many AS SELECT seq AS id, repeat('x', 100) AS pad FROM seq_1_to_200000")
    def sessions() -> set[int]:
        with c.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                        [my.schema])
            return {r[0] for r in cur.fetchall()}

    try:
        before = sessions()  # other tests' idle sessions (DuckDB's connection pool) are not this one's
        batch = Batch(DAY, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
        _, batches = read_batches(my, SqlSource(conn_id=my.conn_id, table="many"), batch, 1000)
        assert next(batches).num_rows == 1000
        assert sessions() - before  # the reader's session, mid-result
        batches.close()
        deadline = time.monotonic() + 30
        while sessions() - before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not sessions() - before
    finally:
        with c.cursor() as cur:
            cur.execute("DROP TABLE many")
        c.close()


def test_my_a_column_type_the_text_reader_does_not_take_goes_through_duckdbs_scanner(my, data_home):
    from datetime import time as clock

    from dagspec.sources import mysql as reader
    from dagspec.spec.model import SqlSource

    c = _my_admin(my.schema)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE with_time (id int PRIMARY KEY, at_time time(6), amount decimal(10,2))")
        cur.execute("INSERT INTO with_time VALUES (1, '12:34:56.5', 1.25), (2, NULL, NULL)")
    try:
        _, columns = reader.catalog(my, SqlSource(conn_id=my.conn_id, table="with_time"))
        assert columns["at_time"].wire_type is None and columns["amount"].wire_type == pa.decimal128(10, 2)
        assert extract(my, {"table": "with_time"}, DAY, DAY + timedelta(days=1)) == {"2025-03-01": 2}
        rows = by_id(staged(data_home, DAY))
        assert rows == [{"id": 1, "at_time": clock(12, 34, 56, 500000), "amount": Decimal("1.25")},
                        {"id": 2, "at_time": None, "amount": None}]
    finally:
        with c.cursor() as cur:
            cur.execute("DROP TABLE with_time")
        c.close()
