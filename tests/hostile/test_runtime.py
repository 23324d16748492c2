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
    for case, staged in utc.items():  # the reference itself is right: rows 2..5 in two batches, in UTC
        assert sorted(staged) == ["2025-03-01", "2025-03-03"], case
        ids = [[int(r["id"]) for r in staged[d]["rows"]] for d in sorted(staged)]
        assert ids == [[2, 3], [4, 5]], (case, ids)
        assert any("tz=UTC" in f for f in staged["2025-03-01"]["schema"]) or case.startswith("my_scanner"), case
    for tz in ("Europe/Berlin", "America/New_York"):
        got = _staged_under(tz, tz_sources, tmp_path / tz.replace("/", "_"))
        for case in utc:
            assert got[case] == utc[case], f"TZ={tz} {case}: {got[case]} != {utc[case]}"
