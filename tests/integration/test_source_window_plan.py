"""A small window of a big PostgreSQL table is one indexed query; a big one is the parallel scan; both stage the same rows.

Its own database (ds_window_t_<pid>), dropped at the end. The rows expected come from PostgreSQL itself.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.pg_databases import pg_admin as _admin
from support.pg_databases import scratch_database

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.runner import run_step
from dagspec.sources import duckdb_scan, postgres, postgres_small
from dagspec.spec.model import Pipeline, SqlSource
from dagspec.store import Store
from dagspec.windows import Batch

DB = f"ds_window_t_{os.getpid()}"
DAYS = 60
PER_DAY = 3000


@pytest.fixture(scope="module")
def pg():
    with scratch_database(DB):
        with _admin(DB) as c:
            # Wide enough rows that the table spans well over one scan task (1,000 pages) of the parallel scan.
            c.execute("CREATE TABLE sales (id bigint PRIMARY KEY, day date NOT NULL, maybe_day date, "
                      "amount numeric(12,2) NOT NULL, note text NOT NULL)")
            c.execute(f"INSERT INTO sales SELECT g, date '2025-01-01' + (g % {DAYS}), "
                      "CASE WHEN g % 50000 = 7 THEN NULL ELSE date '2025-01-01' + (g % 60) END, "
                      f"(g % 100000) / 100.0, repeat(md5(g::text), 4) FROM generate_series(1, {DAYS * PER_DAY}) g")
            c.execute("CREATE INDEX ON sales (day)")
            c.execute("CREATE TABLE unindexed AS SELECT * FROM sales")
            # TPC-H-like types, and text that CSV must carry exactly: quotes, commas, newlines, backslashes,
            # an empty string next to NULLs.
            c.execute("CREATE TABLE typed (id bigint NOT NULL, day date NOT NULL, n integer, qty numeric(15,2), "
                      "flag char(1), mode varchar(10), at timestamp, at_utc timestamptz, note text, ok boolean, "
                      "ratio double precision)")
            c.execute(f"INSERT INTO typed SELECT g, date '2025-01-01' + (g % {DAYS}), "
                      "CASE WHEN g % 7 = 0 THEN NULL ELSE g * 3 END, "
                      "CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 100000) / 100.0 - 300 END, "
                      "CASE WHEN g % 13 = 0 THEN NULL ELSE chr(65 + g % 26) END, "
                      "CASE WHEN g / 60 % 5 = 0 THEN 'AIR ' ELSE 'TRUCK' END, "
                      "timestamp '2025-01-01 00:00:00.123456' + g * interval '17 seconds', "
                      "timestamptz '2025-01-01 00:00:00+00' + g * interval '1.5 seconds', "
                      "CASE g / 60 % 6 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'say \"hi\", ok' "
                      "WHEN 3 THEN E'two\\nlines\\r\\nand a \\\\ backslash' WHEN 4 THEN E'tab\\there' "
                      "ELSE repeat(md5(g::text), 3) END, "
                      "CASE WHEN g / 60 % 4 = 0 THEN NULL ELSE g / 60 % 2 = 0 END, "
                      "CASE WHEN g % 9 = 0 THEN NULL ELSE g / 7.0 END "
                      f"FROM generate_series(1, {DAYS * PER_DAY}) g")
            c.execute("CREATE INDEX ON typed (day)")
            c.execute("CREATE TABLE odd AS SELECT id, day, gen_random_uuid() AS token FROM sales")
            c.execute("CREATE INDEX ON odd (day)")
            c.execute("VACUUM ANALYZE")
        yield ConnectionInfo("ds_window_src", "postgres", "127.0.0.1", 5432, "postgres", None, DB)


def _extract(info: ConnectionInfo, table: str, start: date, end: date, batch_size: int | None = None) -> dict:
    shape = {"batch_days": 366} if batch_size is None else {"batch_days": 1, "batch_size": batch_size}
    p = Pipeline.model_validate({
        "dag_id": "ds_window_test", "start_date": "2025-01-01", **shape,
        "steps": [{"id": "extract", "kind": "extract", "target": {"schema": "raw", "table": table},
                   "source": {"conn_id": info.conn_id, "table": table, "incremental_column": "day"}}],
    })
    return run_step(p, "extract", datetime.combine(start, datetime.min.time(), UTC),
                    datetime.combine(end, datetime.min.time(), UTC),
                    resolver=lambda c: info if c == info.conn_id else env_resolver(c))


def _staged(home, table: str, day: date) -> list[dict]:
    part = Store(home / "store").partition("raw", table, day)
    rows = [r for f in part.files for r in pq.read_table(f).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def _from_postgres(table: str, start: date, end: date) -> list[dict]:
    with _admin(DB) as c:
        cur = c.execute(f"SELECT * FROM {table} WHERE day >= %s AND day < %s ORDER BY id", [start, end])
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


@pytest.fixture
def scan_settings(monkeypatch):
    """The DuckDB settings each extract's scan ran with."""
    seen: list[dict] = []
    real = duckdb_scan.connect

    def recording(extension, settings=None):
        seen.append(dict(settings or {}))
        return real(extension, settings)

    monkeypatch.setattr(duckdb_scan, "connect", recording)
    return seen


def test_the_planner_decides_one_query_for_a_day_and_the_parallel_scan_for_everything(pg):
    day = date(2025, 1, 10)
    assert postgres.scan_plan(pg, "public", "sales", "day", (day, date(2025, 1, 11))) == "single"
    assert postgres.scan_plan(pg, "public", "sales", "day", (date(2024, 1, 1), date(2026, 1, 1))) == "parallel"
    # Without an index PostgreSQL would scan the whole table for any window: the parallel scan does that faster.
    assert postgres.scan_plan(pg, "public", "unindexed", "day", (day, date(2025, 1, 11))) == "parallel"


def test_an_unreadable_plan_falls_back_to_the_parallel_scan(pg):
    wrong = ConnectionInfo("ds_window_src", "postgres", "127.0.0.1", 5432, "postgres", None, DB + "_missing")
    assert postgres.scan_plan(wrong, "public", "sales", "day", (date(2025, 1, 1), date(2025, 1, 2))) == "parallel"


def test_a_one_day_window_is_one_psycopg_query_without_the_scanner(pg, data_home, scan_settings):
    day = date(2025, 1, 10)
    assert _extract(pg, "sales", day, date(2025, 1, 11)) == {"2025-01-10": PER_DAY}
    assert scan_settings == []  # DuckDB's scanner was never loaded
    assert _staged(data_home, "sales", day) == _from_postgres("sales", day, date(2025, 1, 11))


def test_a_whole_range_runs_the_parallel_scan_and_stages_every_row(pg, data_home, scan_settings):
    start, end = date(2025, 1, 1), date(2025, 3, 2)
    result = _extract(pg, "sales", start, end)
    assert sum(result.values()) == DAYS * PER_DAY
    assert "pg_use_ctid_scan" not in scan_settings[-1]
    assert _staged(data_home, "sales", start) == _from_postgres("sales", start, end)


@pytest.mark.parametrize("table", ["sales", "unindexed"])
def test_forced_plans_stage_the_same_rows_and_schema(pg, data_home, monkeypatch, table):
    day = date(2025, 2, 3)
    staged = {}
    for plan in ("single", "parallel"):
        monkeypatch.setenv("DAGSPEC_PG_SCAN", plan)
        _extract(pg, table, day, date(2025, 2, 4))
        part = Store(data_home / "store").partition("raw", table, day)
        staged[plan] = (pq.read_schema(part.files[0]), _staged(data_home, table, day))
    assert staged["single"] == staged["parallel"]
    assert len(staged["single"][1]) == PER_DAY


def test_null_keys_are_counted_through_psycopg_and_not_at_all_on_a_not_null_column(pg):
    base = {"conn_id": pg.conn_id, "table": "sales"}
    assert postgres.null_key_rows(pg, SqlSource.model_validate({**base, "incremental_column": "maybe_day"})) == len(
        [g for g in range(1, DAYS * PER_DAY + 1) if g % 50000 == 7])
    assert postgres.null_key_rows(pg, SqlSource.model_validate({**base, "incremental_column": "day"})) == 0


def _part_digests(home, table: str, day: date) -> list[tuple[str, str]]:
    import hashlib

    part = Store(home / "store").partition("raw", table, day)
    return [(f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in map(Path, part.files)]


@pytest.mark.parametrize("table", ["sales", "typed"])
def test_the_small_path_and_the_scanner_stage_byte_identical_files(pg, data_home, monkeypatch, scan_settings, table):
    day, end = date(2025, 2, 3), date(2025, 2, 4)
    _extract(pg, table, day, end)
    assert scan_settings == []
    small = _part_digests(data_home, table, day)
    rows = _staged(data_home, table, day)

    monkeypatch.setenv("DAGSPEC_PG_SCAN", "single")
    monkeypatch.setattr(postgres_small, "SMALL_TYPES", frozenset())  # every type "unknown": the scanner reads
    _extract(pg, table, day, end)
    assert scan_settings[-1].get("pg_use_ctid_scan") is False
    assert _part_digests(data_home, table, day) == small
    assert rows == _from_postgres(table, day, end) and len(rows) == PER_DAY
    if table == "typed":  # the hostile text and the NULLs really were in the window
        assert {None, "", 'say "hi", ok', "two\nlines\r\nand a \\ backslash"} <= {r["note"] for r in rows}
        assert {r["mode"] for r in rows} == {"AIR ", "TRUCK"} and {r["ok"] for r in rows} == {None, True, False}


def test_a_table_with_a_type_the_small_path_does_not_read_keeps_the_scanner(pg, data_home, scan_settings):
    day, end = date(2025, 1, 20), date(2025, 1, 21)
    assert _extract(pg, "odd", day, end) == {"2025-01-20": PER_DAY}
    assert scan_settings[-1].get("pg_use_ctid_scan") is False
    staged = [{**r, "token": str(r["token"])} for r in _staged(data_home, "odd", day)]
    assert staged == [{**r, "token": str(r["token"])} for r in _from_postgres("odd", day, end)]


def test_one_extract_reads_the_catalog_once_and_the_null_key_count_reuses_it(pg, data_home, monkeypatch):
    asked = []
    own, shared = postgres.catalog, postgres.catalog_on
    monkeypatch.setattr(postgres, "catalog", lambda *a: asked.append("own connection") or own(*a))
    monkeypatch.setattr(postgres, "catalog_on", lambda *a: asked.append("the read's") or shared(*a))
    assert _extract(pg, "sales", date(2025, 1, 10), date(2025, 1, 11)) == {"2025-01-10": PER_DAY}
    assert asked == ["the read's"]


def test_a_chunk_of_days_read_once_stages_the_bytes_of_its_days_read_one_by_one(pg, data_home, monkeypatch, caplog):
    import logging

    start, end = date(2025, 1, 20), date(2025, 1, 25)
    _extract(pg, "typed", start, end, batch_size=1)
    one_by_one = {d: _part_digests(data_home, "typed", d) for d in (start, date(2025, 1, 22), date(2025, 1, 24))}
    with caplog.at_level(logging.INFO, logger="dagspec"):
        _extract(pg, "typed", start, end, batch_size=5)
    assert any("one read for 5 partitions" in r.getMessage() for r in caplog.records)
    assert {d: _part_digests(data_home, "typed", d) for d in one_by_one} == one_by_one


def test_both_paths_hand_an_object_store_the_same_batches(pg, monkeypatch):
    """Into S3/GCS the batches go through pyarrow's writer as they come: same schema, same rows in the same
    batch lengths give the same parts."""
    source = SqlSource.model_validate({"conn_id": pg.conn_id, "table": "typed", "incremental_column": "day"})
    lo = datetime(2025, 2, 3, tzinfo=UTC)
    batch = Batch(lo.date(), lo, datetime(2025, 2, 4, tzinfo=UTC))

    def read() -> tuple:
        schema, rows = postgres.read_batches(pg, source, batch, 1000)
        return schema, [(b.num_rows, b.to_pylist()) for b in rows]

    small = read()
    monkeypatch.setenv("DAGSPEC_PG_SCAN", "single")
    monkeypatch.setattr(postgres_small, "SMALL_TYPES", frozenset())
    assert read() == small
    assert [n for n, _ in small[1]] == [1000, 1000, 1000]
