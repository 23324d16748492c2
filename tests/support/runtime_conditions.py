"""Fixtures and helpers of hostile/test_runtime: the same timestamp rows in PostgreSQL, MariaDB and a DuckDB file, a
probe run under another TZ, a tiny disk (a tmpfs, or a stand-in where none can be mounted), session counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import need

from dagspec.spec.model import Pipeline

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("tz_extract.py")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}

# Rows on both sides of the batch edges, with instants whose local rendering differs from UTC in
# Berlin (+01) and New York (-05): a session in the host's zone would shift or mis-type them.
EVENTS = [(1, "2025-02-28 23:59:59.999999"), (2, "2025-03-01 00:00:00"), (3, "2025-03-02 23:30:00"),
          (4, "2025-03-03 00:00:00"), (5, "2025-03-03 04:59:59"), (6, "2025-03-04 00:00:00")]


def pg_admin(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=5, **PG)


def my_admin(database: str | None = None):
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
        pg_root, my_root = pg_admin(), my_admin()
    except (psycopg.Error, pymysql.Error) as exc:
        need(False, f"PostgreSQL on 127.0.0.1:5432 and MariaDB on 127.0.0.1:3306: {exc}")
    pg_root.execute(f"CREATE DATABASE {name}")
    with my_root.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    values = ", ".join(f"({i}, '{t}+00', '{t}', '{t[:10]}')" for i, t in EVENTS)
    try:
        with pg_admin(name) as c:
            c.execute("CREATE TABLE events (id int PRIMARY KEY, ts timestamptz, ts_local timestamp, on_day date)")
            c.execute(f"INSERT INTO events VALUES {values}")
            c.execute("CREATE TABLE events_exact AS SELECT *, id::numeric / 3 AS third FROM events")
        my = my_admin(name)
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
        pg_root.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        pg_root.close()
        with my_root.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        my_root.close()


def staged_under(tz: str, cases: dict, home: Path) -> dict:
    env = {**os.environ, "TZ": tz, "DAGSPEC_HOME": str(home),
           "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, str(PROBE), json.dumps(cases), str(home / "store")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"TZ={tz}:\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.splitlines()[-1])


def sessions(dbname: str, settle_s: float = 2.0) -> int:
    """Sessions of `dbname`, given a moment to go: a closed client's backend leaves pg_stat_activity a few
    milliseconds after the close, so one counted straight away is not a leak; one still there after
    `settle_s` is."""
    deadline = time.monotonic() + settle_s
    with pg_admin() as admin:
        while True:
            count = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [dbname]).fetchone()[0]
            if count == 0 or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


# ~5 MB of Parquet, over a 2 MB disk; under one row group (122,880 rows), so DuckDB writes it at COMMIT, not
# during the INSERT (a failed INSERT is rolled back cleanly; the failed COMMIT is the case that hid its cause).
BIG = "SELECT i AS id, md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text) AS s FROM range(100000) r(i)"


@contextmanager
def tiny_disk(path: Path, size: str = "2m"):
    """A 2 MB tmpfs at `path` (root may mount one); None where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True).returncode == 0
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def enospc(*_args, **_kwargs):
    raise OSError(28, "No space left on device")


class FullOnCommit:
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


def warehouse_on(disk: Path | None, folder: Path, monkeypatch) -> None:
    """The embedded warehouse on the full disk, or (no tmpfs) one whose COMMIT fails as on a full disk."""
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE",
                       json.dumps({"conn_type": "duckdb", "host": str((disk or folder) / "warehouse.duckdb")}))
    if disk is None:
        import dagspec.warehouse.duckdb as warehouse

        real = warehouse.duckdb_utc
        monkeypatch.setattr(warehouse, "duckdb_utc", lambda con: FullOnCommit(real(con)))


@pytest.fixture()
def big_duckdb_source(tmp_path, monkeypatch) -> str:
    import duckdb

    path = tmp_path / "big.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"CREATE TABLE big AS {BIG}")
    con.close()
    monkeypatch.setenv("AIRFLOW_CONN_DS_BIG", json.dumps({"conn_type": "duckdb", "host": str(path)}))
    return "ds_big"


def extract_big(conn_id: str, extra_steps=()) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "ds_full", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"conn_id": conn_id, "table": "big"},
         "target": {"schema": "raw", "table": "big"}}, *extra_steps]})
