"""Hostile run-time conditions: a host that is not in UTC, a full disk, connections that run out.

Each test names the defect of issue 12 it guards (4: time zone, 8: errors hiding their cause,
9: connections leaking across dates).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import need

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("tz_extract.py")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}

# Rows on both sides of the batch edges, with instants whose local rendering differs from UTC in
# Berlin (+01) and New York (-05): a session in the host's zone would shift or mis-type them.
EVENTS = [(1, "2025-02-28 23:59:59.999999"), (2, "2025-03-01 00:00:00"), (3, "2025-03-02 23:30:00"),
          (4, "2025-03-03 00:00:00"), (5, "2025-03-03 04:59:59"), (6, "2025-03-04 00:00:00")]


def _pg_admin(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=5, **PG)


def _my_admin(database: str | None = None):
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database=database,
                           autocommit=True, connect_timeout=5)


@pytest.fixture()
def tz_sources(tmp_path):
    """A PostgreSQL database, a MariaDB database and a DuckDB file holding the same timestamp rows."""
    import duckdb
    import psycopg
    import pymysql

    name = f"ds_tz_{uuid.uuid4().hex[:10]}"
    try:
        pg_admin, my_admin = _pg_admin(), _my_admin()
    except (psycopg.Error, pymysql.Error) as exc:
        need(False, f"PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306: {exc}")
    pg_admin.execute(f"CREATE DATABASE {name}")
    with my_admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    values = ", ".join(f"({i}, '{t}+00', '{t}', '{t[:10]}')" for i, t in EVENTS)
    try:
        with _pg_admin(name) as c:
            c.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz, ts_local timestamp, on_day date)")
            c.execute(f"INSERT INTO events VALUES {values}")
            c.execute("CREATE TABLE events_exact AS SELECT *, id::numeric / 3 AS third FROM events")
        my = _my_admin(name)
        with my.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamp(6) NULL, ts_local datetime(6), "
                        "on_day date, span time)")
            cur.execute("INSERT INTO events VALUES " + ", ".join(
                f"({i}, '{t}', '{t}', '{t[:10]}', '01:02:03')" for i, t in EVENTS))
        my.close()
        duck = tmp_path / "events.duckdb"
        con = duckdb.connect(str(duck))
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMPTZ, ts_local TIMESTAMP, on_day DATE)")
        con.execute("INSERT INTO events VALUES " + ", ".join(
            f"({i}, TIMESTAMPTZ '{t}+00', TIMESTAMP '{t}', DATE '{t[:10]}')" for i, t in EVENTS))
        con.close()
        pg = {"conn_id": "ds_tz_pg", "conn_type": "postgres", "host": "127.0.0.1", "port": 5432,
              "login": "postgres", "schema": name}
        mysql = {"conn_id": "ds_tz_my", "conn_type": "mysql", "host": "127.0.0.1", "port": 3306, "login": "root",
                 "schema": name}
        duckdb_file = {"conn_id": "ds_tz_duck", "conn_type": "duckdb", "host": str(duck)}
        window = "SELECT id, ts, ts_local, on_day FROM events WHERE ts >= :from_date AND ts < :to_date"
        yield {
            "pg_scanner_at": [pg, {"table": "events", "incremental_column": "ts"}, "pg1"],
            "pg_scanner_local": [pg, {"table": "events", "incremental_column": "ts_local"}, "pg2"],
            "pg_copy_table": [pg, {"table": "events_exact", "incremental_column": "ts"}, "pg3"],
            "pg_copy_query": [pg, {"query": window}, "pg4"],
            "pg_sqlalchemy_query": [pg, {"query": window.replace("on_day", "on_day, ARRAY[id] AS ids")}, "pg5"],
            "my_wire": [mysql, {"table": "events", "columns": ["id", "ts", "ts_local", "on_day"],
                                "incremental_column": "ts"}, "my1"],
            "my_scanner": [mysql, {"table": "events", "incremental_column": "ts_local"}, "my2"],
            "my_query": [mysql, {"query": window}, "my3"],
            "duckdb_table": [duckdb_file, {"table": "events", "incremental_column": "ts"}, "dk1"],
            "duckdb_query": [duckdb_file, {"query": window}, "dk2"],
        }
    finally:
        pg_admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        pg_admin.close()
        with my_admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        my_admin.close()


def _staged_under(tz: str, cases: dict, home: Path) -> dict:
    env = {**os.environ, "TZ": tz, "DAGSPEC_HOME": str(home),
           "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, str(PROBE), json.dumps(cases), str(home / "store")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"TZ={tz}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def test_every_source_stages_the_same_values_whatever_the_hosts_time_zone(tz_sources, tmp_path):
    """Defect 4: under TZ=Europe/Berlin a PostgreSQL extract of a timestamptz column failed (DuckDB's session
    rendered it in the host's zone); every source session must run in UTC."""
    utc = _staged_under("UTC", tz_sources, tmp_path / "utc")
    warehouse = utc.pop("warehouse")
    assert [(r["id"], r["hour"], r["day"]) for r in warehouse] == [
        ("2", "0", "datetime.date(2025, 3, 1)"), ("3", "23", "datetime.date(2025, 3, 2)"),
        ("4", "0", "datetime.date(2025, 3, 3)"), ("5", "4", "datetime.date(2025, 3, 3)")], warehouse
    for case, staged in utc.items():  # the reference itself is right: rows 2..5 in two batches, in UTC
        assert sorted(staged) == ["2025-03-01", "2025-03-03"], case
        ids = [[int(r["id"]) for r in staged[d]["rows"]] for d in sorted(staged)]
        assert ids == [[2, 3], [4, 5]], (case, ids)
        assert any("tz=UTC" in f for f in staged["2025-03-01"]["schema"]) or case.startswith("my_scanner"), case
    for tz in ("Europe/Berlin", "America/New_York"):
        got = _staged_under(tz, tz_sources, tmp_path / tz.replace("/", "_"))
        assert got.pop("warehouse") == warehouse, f"TZ={tz}: the DuckDB warehouse's transform differs"
        for case in utc:
            assert got[case] == utc[case], f"TZ={tz} {case}: {got[case]} != {utc[case]}"


# ---------------------------------------------------------------- defect 9: connections across dates

from datetime import date, timedelta  # noqa: E402

from dagspec.errors import StepFailed  # noqa: E402
from dagspec.runner import run_pipeline, window_of_day  # noqa: E402
from dagspec.spec.model import Pipeline  # noqa: E402
from warehouse_fixtures import pg_db  # noqa: E402,F401  (fixture)

CHECKED_IN_POSTGRES = [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "orders", "min_value": 1, "max_value": 100000}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "channel"}},
]


def revenue_checked_in_postgres(expectations=CHECKED_IN_POSTGRES) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "ds_leak", "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        {"id": "check_revenue", "kind": "validate", "input": "daily_revenue", "run_on": "warehouse",
         "expectations": expectations}]})


def _sessions(dbname: str, settle_s: float = 2.0) -> int:
    """Sessions of `dbname`, given a moment to go: a closed client's backend leaves pg_stat_activity a few
    milliseconds after the close, so one counted straight away is not a leak; one still there after
    `settle_s` is."""
    import time

    deadline = time.monotonic() + settle_s
    with _pg_admin() as admin:
        while True:
            count = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchone()[0]
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


def test_connections_stay_flat_over_a_200_date_run(data_home, pg_db):
    """Before: each date left GX's two engines (and their pools) open until garbage collection; 130 dates
    held 98 of PostgreSQL's 100 connections."""
    pipeline = revenue_checked_in_postgres()
    before = _sessions(pg_db)
    counts = []
    for i in range(200):
        run_pipeline(pipeline, window_of_day(pipeline, date(2025, 1, 1) + timedelta(days=i)))
        counts.append(_sessions(pg_db))
    assert max(counts) == before == 0, counts


@pytest.mark.parametrize("limit", [1, 2], ids=["at-connect", "while-computing"])
def test_too_many_clients_while_checking_is_an_error_of_the_run_not_a_failed_expectation(data_home, pg_db,
                                                                                          monkeypatch, limit):
    """The role may hold `limit` connections: with 1 (the step's own session has it) GX cannot connect at all;
    with 2 its connection test passes and its execution engine's own pool then fails while computing metrics,
    where GX puts the exception in each result's exception_info with success false: that was recorded as a
    validation failure. Both must fail the task naming the connection."""
    from dagspec.stages.validate import ValidationFailed

    from dagspec.runner import run_step

    pipeline = revenue_checked_in_postgres()
    window = window_of_day(pipeline, date(2025, 3, 1))
    run_pipeline(pipeline, window)  # as postgres: passes
    role = f"ds_one_{uuid.uuid4().hex[:8]}"
    with _pg_admin() as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {limit}")
    with _pg_admin(pg_db) as c:
        c.execute(f"GRANT USAGE ON SCHEMA dagspec_work TO {role}")
        c.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA dagspec_work TO {role}")
    try:
        monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", f"postgres://{role}@127.0.0.1:5432/{pg_db}")
        with pytest.raises(StepFailed) as err:
            run_step(pipeline, "check_revenue", window.start, window.end)
        assert not isinstance(err.value, ValidationFailed), err.value
        message = str(err.value)
        assert "'dagspec_warehouse'" in message and "not a failed expectation" in message, message
        assert "too many connections" in message, message
    finally:
        with _pg_admin(pg_db) as c:
            c.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")
            c.execute(f"DROP OWNED BY {role}")
        with _pg_admin() as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_a_column_missing_in_the_warehouse_is_an_error_not_a_failed_expectation(data_home, pg_db):
    from dagspec.stages.validate import ValidationFailed

    pipeline = revenue_checked_in_postgres([
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}}])
    with pytest.raises(StepFailed) as err:
        run_pipeline(pipeline, window_of_day(pipeline, date(2025, 3, 1)))
    assert not isinstance(err.value, ValidationFailed), err.value
    message = str(err.value)
    assert "'dagspec_warehouse'" in message and "no_such_column" in message, message
    assert _sessions(pg_db) == 0


# ---------------------------------------------------------------- defect 8: a full disk names itself

from contextlib import contextmanager  # noqa: E402

BIG = ("SELECT i AS id, md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) AS s FROM range(100000) r(i)")  # under one row group (122,880): DuckDB writes it at COMMIT, not during the INSERT


@contextmanager
def _tiny_disk(path: Path, size: str = "2m"):
    """A 2 MB tmpfs at `path` (root may mount one); None where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _enospc(*_args, **_kwargs):
    raise OSError(28, "No space left on device")


class _FullOnCommit:
    """Where no tmpfs can be mounted: a DuckDB connection whose COMMIT fails as DuckDB's does on a full disk
    (the transaction is over, then the error is raised), everything else passed through."""

    def __init__(self, con):
        self._con = con

    def execute(self, sql, *args, **kwargs):
        if sql.strip().upper() == "COMMIT":
            import duckdb

            self._con.execute("ROLLBACK")
            raise duckdb.TransactionException('TransactionContext Error: Failed to commit: Could not write file '
                                              '"warehouse.duckdb.wal": No space left on device')
        return self._con.execute(sql, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def _warehouse_on(disk: Path | None, folder: Path, monkeypatch) -> None:
    """The embedded warehouse on the full disk, or (no tmpfs) one whose COMMIT fails as on a full disk."""
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE",
                       json.dumps({"conn_type": "duckdb", "host": str((disk or folder) / "warehouse.duckdb")}))
    if disk is None:
        import dagspec.warehouse.duckdb as warehouse

        real = warehouse.duckdb_utc
        monkeypatch.setattr(warehouse, "duckdb_utc", lambda con: _FullOnCommit(real(con)))


@pytest.fixture()
def big_duckdb_source(tmp_path, monkeypatch) -> str:
    import duckdb

    path = tmp_path / "big.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE big AS {BIG}")
    con.close()
    monkeypatch.setenv("AIRFLOW_CONN_DS_BIG", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return "ds_big"


def _extract_big(conn_id: str, extra_steps=()) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "ds_full", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"conn_id": conn_id, "table": "big"},
         "target": {"schema": "raw", "table": "big"}}, *extra_steps]})


def test_a_full_store_is_named_as_the_store_not_the_source(data_home, tmp_path, monkeypatch, big_duckdb_source):
    """Before: 'source connection ... No space left on device' sent people to look at the source database."""
    from dagspec.store import Store

    with _tiny_disk(tmp_path / "full") as disk:
        folder = (disk or tmp_path) / "store"
        monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_STORE", json.dumps({"conn_type": "fs", "extra": {"path": str(folder)}}))
        if disk is None:  # no tmpfs here: the store's write fails as a full disk does
            import dagspec.store

            monkeypatch.setattr(dagspec.store, "_swap_in", _enospc)
        pipeline = _extract_big(big_duckdb_source)
        with pytest.raises(StepFailed) as err:
            run_pipeline(pipeline, window_of_day(pipeline, date(2025, 3, 1)))
        message = str(err.value)
        assert "No space left on device" in message, message
        assert message.startswith("store connection 'dagspec_store'") and "source connection" not in message, message
        assert Store(folder).batch_dates("raw", "big") == []


def test_a_full_warehouse_keeps_no_space_left_and_not_the_failed_rollback(data_home, tmp_path, monkeypatch,
                                                                          big_duckdb_source):
    """DuckDB's failed COMMIT ends the transaction; the ROLLBACK after it then raised 'cannot rollback - no
    transaction is active', which replaced the cause."""
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "copy.sql").write_text("SELECT * FROM {{ ref('extract') }}")
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql))
    pipeline = _extract_big(big_duckdb_source, [
        {"id": "copy", "kind": "transform", "sql": "copy.sql", "inputs": ["extract"],
         "target": {"schema": "analytics", "table": "big"}}])
    window = window_of_day(pipeline, date(2025, 3, 1))
    from dagspec.runner import run_step

    run_step(pipeline, "extract", window.start, window.end)
    with _tiny_disk(tmp_path / "full") as disk:
        _warehouse_on(disk, tmp_path, monkeypatch)
        with pytest.raises(StepFailed) as err:
            run_step(pipeline, "copy", window.start, window.end)
        message = str(err.value)
        assert "No space left on device" in message and "cannot rollback" not in message, message
        assert "in the warehouse" in message and "analytics.big is unchanged" in message, message


@pytest.mark.parametrize("target", ["table", "export"])
def test_publishing_onto_a_full_disk_names_that_target(data_home, tmp_path, monkeypatch, big_duckdb_source, target):
    from dagspec.runner import run_step

    with _tiny_disk(tmp_path / "full") as disk:
        publish = {"id": "publish", "kind": "publish", "input": "extract"}
        if target == "table":
            publish["table"] = {"schema": "analytics", "table": "big"}
        else:
            publish["export"] = {"format": "parquet", "conn_id": "ds_full_lake",
                                 "target": {"schema": "lake", "table": "big"}}
            monkeypatch.setenv("AIRFLOW_CONN_DS_FULL_LAKE",
                               json.dumps({"conn_type": "fs", "extra": {"path": str((disk or tmp_path) / "lake")}}))
        pipeline = _extract_big(big_duckdb_source, [publish])
        window = window_of_day(pipeline, date(2025, 3, 1))
        run_step(pipeline, "extract", window.start, window.end)  # into the store on the ordinary disk
        if target == "table":
            _warehouse_on(disk, tmp_path, monkeypatch)
        elif disk is None:
            import dagspec.store

            monkeypatch.setattr(dagspec.store, "_swap_in", _enospc)
        with pytest.raises(StepFailed) as err:
            run_step(pipeline, "publish", window.start, window.end)
        message = str(err.value)
        named = "warehouse connection 'dagspec_warehouse'" if target == "table" else "store connection 'ds_full_lake'"
        assert message.startswith(f"publish publish: {named}") and "No space left on device" in message, message
        assert "cannot rollback" not in message, message


def test_a_postgres_warehouse_session_is_utc_even_when_the_database_says_otherwise(data_home, tmp_path, pg_db,
                                                                                   monkeypatch):
    """The host's TZ never reaches libpq, but a database's (or role's) TimeZone default does: the session's
    own options override both."""
    import duckdb

    from dagspec.runner import run_step
    from warehouse_fixtures import pg_rows

    source = tmp_path / "events.duckdb"
    con = duckdb.connect(str(source))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE events (id INTEGER, ts TIMESTAMPTZ)")
    con.execute("INSERT INTO events VALUES " + ", ".join(f"({i}, TIMESTAMPTZ '{t}+00')" for i, t in EVENTS))
    con.close()
    monkeypatch.setenv("AIRFLOW_CONN_DS_TZ_EVENTS", json.dumps({"conn_type": "duckdb", "host": str(source)}))
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "tz.sql").write_text("SELECT id, CAST(ts AS DATE) AS day, CAST(EXTRACT(hour FROM ts) AS INTEGER) AS hour "
                                "FROM {{ ref('extract') }}")
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql))
    with _pg_admin() as admin:
        admin.execute(f"ALTER DATABASE {pg_db} SET TimeZone = 'Asia/Tokyo'")
    pipeline = Pipeline.model_validate({"dag_id": "ds_tz_wh", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"conn_id": "ds_tz_events", "table": "events"},
         "target": {"schema": "raw", "table": "events"}},
        {"id": "tz", "kind": "transform", "sql": "tz.sql", "inputs": ["extract"],
         "target": {"schema": "analytics", "table": "tz"}}]})
    window = window_of_day(pipeline, date(2025, 3, 2))
    run_step(pipeline, "extract", window.start, window.end)
    run_step(pipeline, "tz", window.start, window.end)
    assert pg_rows(pg_db, "SELECT id, day::text, hour FROM analytics.tz ORDER BY id") == [
        (1, "2025-02-28", 23), (2, "2025-03-01", 0), (3, "2025-03-02", 23), (4, "2025-03-03", 0),
        (5, "2025-03-03", 4), (6, "2025-03-04", 0)]


def test_an_error_quoting_rich_markup_is_printed_as_text(data_home, tmp_path):
    """`dagspec run` printed each failure through Rich markup: an error quoting '[/]' (a table name, a value,
    a password's characters) raised MarkupError instead of showing the failure."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "ds_markup.json").write_text(json.dumps({
        "dag_id": "ds_markup", "start_date": "2025-01-01", "schedule": "@daily",
        "steps": [{"id": "extract", "kind": "extract", "source": {"query": 'SELECT * FROM "[/]" WHERE :from_date < 1'},
                   "target": {"schema": "raw", "table": "t"}}]}))
    env = {**os.environ, "DAGSPEC_HOME": str(data_home), "DAGSPEC_DEFINITIONS": str(folder), "COLUMNS": "10000"}
    done = subprocess.run([str(Path(sys.executable).with_name("dagspec")), "run", "ds_markup", "--date", "2025-03-01"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "MarkupError" not in output, output[-3000:]
    assert "ds_markup 2025-03-01: failed: source connection 'dagspec_source'" in output, output[-3000:]
    assert "no such table: [/]" in output, output[-3000:]
