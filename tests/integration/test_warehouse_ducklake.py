"""DuckLake as the warehouse, its catalog in SQLite and in PostgreSQL: the example pipeline gives exact values and
re-runs identically; replace, merge, table, view and Arrow reads behave as on the DuckDB file; two writer
processes and a reader run side by side with every row accounted for and no batch ever seen half written."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from conftest import need
from support.expected import expected_revenue, source_orders

from dagspec.connections import ConnectionInfo, env_resolver, parse_connection
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.warehouse import open_warehouse
from dagspec.warehouse.base import SchemaDrift
from dagspec.warehouse.ducklake import DuckLakeWarehouse, WarehouseConflict, lake_settings, retried

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 3, 1)
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _extensions_installed() -> bool:
    return all(importlib.util.find_spec(f"duckdb_extension_{n}") for n in ("ducklake", "sqlite_scanner",
                                                                           "postgres_scanner"))


@pytest.fixture(params=["sqlite", "postgres"])
def lake(request, tmp_path, monkeypatch):
    """AIRFLOW_CONN_DAGSPEC_WAREHOUSE as a DuckLake, its catalog in a new SQLite file or a new PostgreSQL database,
    its data in a new folder. Yields the connection's JSON."""
    need(_extensions_installed(), "the duckdb-extension-ducklake / -sqlite-scanner / -postgres-scanner wheels")
    data = tmp_path / "lake-data"
    if request.param == "sqlite":
        conn = {"conn_type": "ducklake", "extra": {"catalog": f"sqlite:{tmp_path / 'catalog.sqlite'}",
                                                   "data_path": str(data)}}
        monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps(conn))
        yield conn
        return
    import psycopg

    try:
        admin = psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=3, **PG)
    except psycopg.OperationalError:
        admin = None
    need(admin is not None, "PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) for the DuckLake catalog")
    name = f"ds_lake_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    conn = {"conn_type": "ducklake", "extra": {"catalog": f"postgres:dbname={name} host=127.0.0.1 user=postgres",
                                               "data_path": str(data)}}
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps(conn))
    try:
        yield conn
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def rows(sql: str, params=None) -> list[tuple]:
    with open_warehouse(env_resolver("dagspec_warehouse")).session() as s:
        return s.con.execute(sql, params or {}).fetchall()


def run(day: date, name: str = "orders_daily.json"):
    pipeline = load_definition(ROOT / "dags" / "definitions" / name)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


@pytest.mark.service
def test_orders_pipeline_on_ducklake_gives_exact_values_and_reruns_identically(data_home, lake):
    run(DAY)
    assert rows("SELECT * FROM analytics.daily_revenue ORDER BY channel") == expected_revenue(
        data_home / "source.db", DAY)
    assert rows("SELECT order_id, amount FROM analytics.orders ORDER BY order_id") == [
        (o[0], o[5]) for o in source_orders(data_home / "source.db", DAY)]
    before = rows("SELECT * FROM analytics.orders ORDER BY order_id")
    revenue = rows("SELECT * FROM analytics.daily_revenue ORDER BY channel")
    run(date(2025, 3, 2))
    run(DAY)
    assert rows("SELECT * FROM analytics.orders WHERE batch_date = $d ORDER BY order_id", {"d": DAY}) == before
    assert rows("SELECT * FROM analytics.daily_revenue WHERE batch_date = $d ORDER BY channel", {"d": DAY}) == revenue
    assert rows("SELECT batch_date, count(*) FROM analytics.daily_revenue GROUP BY 1 ORDER BY 1") == [
        (DAY, 4), (date(2025, 3, 2), 4)]
    # The tables are Parquet files under the data path, not inside the catalog.
    assert list(Path(lake["extra"]["data_path"]).rglob("*.parquet"))


@pytest.mark.service
def test_replace_merge_table_view_and_arrow(lake):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    assert isinstance(wh, DuckLakeWarehouse)
    with wh.session() as s:
        assert s.replace_batch("mart", "t", DAY, "SELECT 1 AS id, 'x' AS v", {}) == 1
        assert s.replace_batch("mart", "t", date(2025, 3, 2), "SELECT 2 AS id, 'y' AS v", {}) == 1
        assert s.replace_batch("mart", "t", DAY, "SELECT 3 AS id, 'z' AS v UNION ALL SELECT 4, 'w'", {}) == 2
        with pytest.raises(SchemaDrift, match="missing column v"):
            s.replace_batch("mart", "t", DAY, "SELECT 5 AS id", {})
        with pytest.raises(duckdb.Error):  # a failed write leaves the batch as it was
            s.replace_batch("mart", "t", DAY, "SELECT CAST('no' AS INTEGER) AS id, 'q' AS v", {})
        assert s.table_columns("mart", "t") == [("id", "INTEGER"), ("v", "VARCHAR"), ("batch_date", "DATE")]

        staged = pa.table({"id": [10, 11], "v": ["a", "b"]})
        rel = s.expose("__ref_m", staged)
        assert s.merge_batch("mart", "m", DAY, f"SELECT * FROM {rel}", {}, ["id"]) == 2
        update = s.expose("__ref_m2", pa.RecordBatchReader.from_batches(
            pa.schema([("id", pa.int64()), ("v", pa.string())]),
            [pa.record_batch({"id": [11, 12], "v": ["B", "c"]})]))
        assert s.merge_batch("mart", "m", date(2025, 3, 2), f"SELECT * FROM {update}", {}, ["id"]) == 2
        with pytest.raises(ValueError, match="duplicate"):
            s.merge_batch("mart", "m", DAY, "SELECT CAST(1 AS BIGINT) AS id, 'a' AS v UNION ALL SELECT 1, 'b'", {}, ["id"])

        assert s.replace_table("mart", "whole", DAY, "SELECT range AS n FROM range(5)", {}) == 5
        assert s.replace_table("mart", "whole", DAY, "SELECT range AS n FROM range(3)", {}) == 3
        s.create_view("mart", "v_t", "SELECT id, v FROM mart.t")
        got = s.arrow("SELECT * FROM mart.v_t ORDER BY id", {}, batch_rows=1).read_all()
    assert got.to_pylist() == [{"id": 2, "v": "y"}, {"id": 3, "v": "z"}, {"id": 4, "v": "w"}]
    assert rows("SELECT id, v, batch_date FROM mart.m ORDER BY id") == [
        (10, "a", DAY), (11, "B", date(2025, 3, 2)), (12, "c", date(2025, 3, 2))]
    assert rows("SELECT count(*) FROM mart.whole") == [(3,)]


@pytest.mark.service
def test_snapshot_keep_prunes_older_batches(lake):
    with open_warehouse(env_resolver("dagspec_warehouse")).session() as s:
        for offset in range(4):
            s.replace_batch("mart", "snap", DAY + timedelta(days=offset), "SELECT 1 AS id", {}, keep=2)
        s.replace_batch("mart", "snap", DAY, "SELECT 1 AS id", {}, keep=2)  # re-running an old day keeps the newer
    assert rows("SELECT DISTINCT batch_date FROM mart.snap ORDER BY 1") == [
        (DAY + timedelta(days=2),), (DAY + timedelta(days=3),)]


WRITER = """
import json, sys
from datetime import date, timedelta
import pyarrow as pa
from dagspec.connections import parse_connection
from dagspec.warehouse import open_warehouse

conn, first, days, per = sys.argv[1], date.fromisoformat(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
wh = open_warehouse(parse_connection("dagspec_warehouse", conn))
if len(sys.argv) > 5:  # start together: extensions loaded and the lake attached, then wait for the go
    import os, time
    with wh.session():
        pass
    open(sys.argv[5] + "." + sys.argv[2], "w").close()
    while not os.path.exists(sys.argv[5]):
        time.sleep(0.005)
for i in range(days):
    day = first + timedelta(days=i)
    base = (day - date(2025, 1, 1)).days * per
    batch = pa.table({"id": pa.array(range(base, base + per), pa.int64()),
                      "v": pa.array([f"{day}:{n}" for n in range(per)])})
    with wh.session() as s:
        rel = s.expose("__ref_pub", batch)
        assert s.replace_batch("mart", "shared", day, f"SELECT * FROM {rel}", {}) == per
print("wrote", days, flush=True)
"""

READER = """
import json, os, sys, time
import duckdb
from dagspec.connections import parse_connection
from dagspec.warehouse import open_warehouse

conn, table, stop = sys.argv[1], sys.argv[2], sys.argv[3]
wh = open_warehouse(parse_connection("dagspec_warehouse", conn))
reads, counts = 0, {}
while not os.path.exists(stop):
    try:
        with wh.session() as s:
            for day, n in s.con.execute(f"SELECT batch_date, count(*) FROM {table} GROUP BY 1").fetchall():
                counts.setdefault(str(day), set()).add(n)
        reads += 1
    except duckdb.CatalogException:  # not published yet
        pass
    time.sleep(0.02)
print(json.dumps({"reads": reads, "counts": {d: sorted(c) for d, c in counts.items()}}), flush=True)
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


@pytest.mark.service
def test_two_writers_and_a_reader_side_by_side_account_for_every_row(lake, tmp_path):
    conn, days, per = json.dumps(lake), 6, 2_000
    with open_warehouse(parse_connection("dagspec_warehouse", conn)).session() as s:  # the table exists first
        s.replace_batch("mart", "shared", date(2024, 12, 31), "SELECT CAST(-1 AS BIGINT) AS id, 'seed' AS v", {})
        s.con.execute("DELETE FROM mart.shared")
    writers, outcomes, reader, read_out, read_err = _beside_a_reader(
        tmp_path, conn, "mart.shared", [(WRITER, conn, first, str(days), str(per)) for first in ("2025-01-01", "2025-02-01")])
    for w, (out, err) in zip(writers, outcomes, strict=True):
        assert w.returncode == 0, err[-3000:]
        assert f"wrote {days}" in out
    assert reader.returncode == 0, read_err[-3000:]
    report = json.loads(read_out.splitlines()[-1])
    # Every batch it saw was whole: none half written, none seen twice over.
    assert report["reads"] > 1 and all(c == [per] for c in report["counts"].values()), report
    expected = 2 * days * per
    assert rows("SELECT count(*), count(DISTINCT id), count(DISTINCT batch_date) FROM mart.shared") == [
        (expected, expected, 2 * days)]
    # Re-running a date gives the same rows.
    before = rows("SELECT * FROM mart.shared WHERE batch_date = DATE '2025-02-03' ORDER BY id")
    rerun = _python(WRITER, conn, "2025-02-03", "1", str(per))
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    assert rows("SELECT * FROM mart.shared WHERE batch_date = DATE '2025-02-03' ORDER BY id") == before
    assert rows("SELECT count(*) FROM mart.shared") == [(expected,)]


def test_a_colliding_commit_is_retried_bounded_and_logged(caplog):
    calls, waits = [], []

    def collides():
        calls.append(1)
        raise duckdb.TransactionException("Failed to commit DuckLake transaction.\n"
                                          "Failed to flush changes into DuckLake: database is locked")

    with caplog.at_level(logging.WARNING, logger="dagspec"), pytest.raises(WarehouseConflict) as info:
        retried(collides, "replace mart.t batch 2025-03-01", attempts=4, sleep=waits.append)
    assert len(calls) == 4 and len(waits) == 3 and all(0 < w <= 5 * 1.5 for w in waits)
    assert "through 4 attempts" in str(info.value) and "PostgreSQL catalog" in str(info.value)
    logged = [r.getMessage() for r in caplog.records if "collided" in r.getMessage()]
    assert len(logged) == 3 and "database is locked" in logged[0] and "attempt 2 of 4" in logged[0]

    outcomes = iter([duckdb.TransactionException("Transaction conflict - attempting to insert"), 7])

    def then_works():
        got = next(outcomes)
        if isinstance(got, Exception):
            raise got
        return got

    assert retried(then_works, "w", sleep=waits.append) == 7

    def broken():
        calls.append(1)
        raise duckdb.BinderException('Referenced column "nope" not found')

    calls.clear()
    with pytest.raises(duckdb.BinderException):
        retried(broken, "w", sleep=waits.append)
    assert len(calls) == 1  # not a collision: raised at once


def test_connection_forms():
    info = parse_connection("wh", json.dumps({"conn_type": "ducklake", "password": "s3cr3t-pw", "extra": {
        "catalog": "postgres:dbname=lake host=db user=etl", "data_path": "s3://bucket/lake"}}))
    kind, catalog, data, schema = lake_settings(info)
    assert (kind, data, schema) == ("postgres", "s3://bucket/lake/", None)
    assert catalog == "postgres:dbname=lake host=db user=etl password=s3cr3t-pw"
    assert "s3cr3t-pw" not in info.scrub(f"could not connect: {catalog}")
    kind, catalog, data, _ = lake_settings(ConnectionInfo("wh", "ducklake", extra={"catalog": "sqlite:/x/cat.sqlite"}))
    assert (kind, catalog, data) == ("sqlite", "sqlite:/x/cat.sqlite", "/x/cat.sqlite.files/")
    with pytest.raises(ValueError, match="extra.catalog"):
        lake_settings(ConnectionInfo("wh", "ducklake", extra={"catalog": "mysql:x"}))
    with pytest.raises(ValueError, match="extra.data_path"):
        lake_settings(ConnectionInfo("wh", "ducklake", extra={"catalog": "postgres:dbname=x"}))


@pytest.mark.service
def test_an_unreachable_postgres_catalog_names_the_connection_not_the_password(tmp_path):
    need(_extensions_installed(), "the duckdb-extension-ducklake / -postgres-scanner wheels")
    info = ConnectionInfo("dagspec_warehouse", "ducklake", password="hunter2-secret", extra={
        "catalog": "postgres:dbname=nowhere host=127.0.0.1 port=1 user=etl connect_timeout=2",
        "data_path": str(tmp_path / "d")})
    with pytest.raises(duckdb.Error) as caught, DuckLakeWarehouse(info).session():
        pass
    assert "dagspec_warehouse" in str(caught.value) and "hunter2-secret" not in str(caught.value)


@pytest.mark.service
def test_two_first_writers_create_the_schema_and_table_together(lake, tmp_path):
    """Neither schema nor table exists: both writers create them at once (DuckLake cannot merge two new schemas
    of one name into one commit; the schema is committed on its own first, and the loser retries)."""
    conn, days, per = json.dumps(lake), 3, 500
    go = tmp_path / "go"
    firsts = ("2025-01-01", "2025-02-01")
    writers = [_python(WRITER, conn, first, str(days), str(per), str(go)) for first in firsts]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.{first}").exists() for first in firsts) and time.monotonic() < deadline:
        if any(w.poll() is not None for w in writers):  # one failed before the start: its error, below
            break
        time.sleep(0.01)
    go.touch()
    for w in writers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-3000:]
    expected = 2 * days * per
    assert rows("SELECT count(*), count(DISTINCT id) FROM mart.shared") == [(expected, expected)]


@pytest.mark.service
def test_the_data_path_in_s3(s3_server, tmp_path, monkeypatch):
    """The same lake with its Parquet files in an S3 bucket (moto server): the connection's login/password and
    extra endpoint_url/region_name reach DuckDB's httpfs as a secret."""
    need(_extensions_installed() and importlib.util.find_spec("duckdb_extension_httpfs") is not None,
         "the duckdb-extension-ducklake / -sqlite-scanner / -httpfs wheels")
    bucket = s3_server.make_bucket("lake")
    conn = {"conn_type": "ducklake", "login": s3_server.access_key, "password": s3_server.secret_key, "extra": {
        "catalog": f"sqlite:{tmp_path / 'catalog.sqlite'}", "data_path": f"s3://{bucket}/lake",
        "endpoint_url": s3_server.endpoint_url, "region_name": s3_server.region}}
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps(conn))
    with open_warehouse(env_resolver("dagspec_warehouse")).session() as s:
        assert s.replace_batch("mart", "t", DAY, "SELECT range AS id FROM range(100)", {}) == 100
        assert s.replace_batch("mart", "t", DAY, "SELECT range AS id FROM range(50)", {}) == 50
    assert rows("SELECT count(*), max(id) FROM mart.t") == [(50, 49)]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.startswith("lake/") and k.endswith(".parquet") for k in keys)


PIPELINE = """
import sys
from datetime import date
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition

pipeline = load_definition(sys.argv[1])
run_pipeline(pipeline, window_of_day(pipeline, date.fromisoformat(sys.argv[2])))
print("ran", sys.argv[2], flush=True)
"""


@pytest.mark.service
def test_two_pipeline_runs_at_once_beside_a_reader_publish_every_row(data_home, lake, tmp_path):
    """orders_daily for two days in two processes at once (every step: extract, check, publish, transform,
    publish), a third process reading the published table throughout: both days exact, nothing half seen."""
    definition = str(ROOT / "dags" / "definitions" / "orders_daily.json")
    days = [DAY, DAY + timedelta(days=1)]
    runs, outcomes, reader, read_out, read_err = _beside_a_reader(
        tmp_path, json.dumps(lake), "analytics.orders", [(PIPELINE, definition, day.isoformat()) for day in days])
    for r, (out, err) in zip(runs, outcomes, strict=True):
        assert r.returncode == 0 and "ran " in out, err[-3000:]
    assert reader.returncode == 0, read_err[-3000:]
    seen = json.loads(read_out.splitlines()[-1])["counts"]
    for day in days:
        final = rows("SELECT count(*) FROM analytics.orders WHERE batch_date = $d", {"d": day})[0][0]
        assert seen.get(day.isoformat(), [final]) == [final], seen  # any count it saw was the whole batch
        assert rows("SELECT order_id, amount FROM analytics.orders WHERE batch_date = $d ORDER BY order_id",
                    {"d": day}) == [(o[0], o[5]) for o in source_orders(data_home / "source.db", day)]
        assert rows("SELECT * FROM analytics.daily_revenue WHERE batch_date = $d ORDER BY channel",
                    {"d": day}) == expected_revenue(data_home / "source.db", day)


def _beside_a_reader(tmp_path, conn: str, table: str, commands: list[tuple]):
    """Run the commands as processes while a reader polls `table`; their outcomes and the reader's."""
    stop = tmp_path / "stop"
    reader = _python(READER, conn, table, str(stop))
    procs = [_python(*command) for command in commands]
    try:
        outcomes = [p.communicate(timeout=600) for p in procs]
    finally:
        stop.touch()
    read_out, read_err = reader.communicate(timeout=120)
    return procs, outcomes, reader, read_out, read_err


def test_a_history_input_reads_published_batches_in_the_lake(lake, data_home, tmp_path):
    from support.day_runs import run_day, write_definition
    from support.expected import source_orders
    from support.history_steps import counting_history

    path = write_definition(tmp_path, "lake_history", counting_history(alias=""))  # no alias: a named view
    later = date(2025, 3, 2)
    for day in (DAY, later, DAY):
        run_day(path, day)
    db = data_home / "source.db"
    assert rows("SELECT batch_date, orders_seen FROM dagspec_work.lake_history__seen ORDER BY 1") == [
        (DAY, len(source_orders(db, DAY))), (later, len(source_orders(db, DAY)) + len(source_orders(db, later)))]
