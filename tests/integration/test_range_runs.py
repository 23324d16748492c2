"""Range-native runs: a chunk of dates read once from the source and split into its partitions stages, checks
and publishes exactly what running the dates one by one does (files byte for byte, warehouse rows)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from dagspec.connections import env_resolver
from dagspec.paths import definitions_dir
from dagspec.runner import run_pipeline, window_of_day
from dagspec.stages.extract_range import chunks_of
from dagspec.windows import Batch, Window

FIRST, DAYS = date(2025, 1, 1), 10
TABLES = ["analytics.orders", "analytics.daily_revenue", "analytics.orders_by_ds"]
# A transform whose SQL text differs per date ({{ ds }}, a macro) besides its bound window: set-based over a chunk,
# each date's rendering is its own part of the one statement.
BY_DS = {"id": "orders_by_ds", "kind": "transform", "after": ["check_orders"], "inputs": ["extract_orders"],
         "target": {"schema": "analytics", "table": "orders_by_ds"},
         "query": "SELECT '{{ ds }}' AS ds, '{{ macros.ds_add(ds, -1) }}' AS day_before, CAST(:batch_date AS DATE) "
                  "AS bound_day, count(*) AS orders, sum(amount) AS amount FROM {{ ref('extract_orders') }} "
                  "WHERE ordered_at >= :from_date AND ordered_at < :to_date"}


def _pipeline(batch_size: int):
    from dagspec.spec.model import Pipeline

    raw = json.loads((definitions_dir() / "orders_daily.json").read_text())
    return Pipeline.model_validate({**raw, "batch_size": batch_size, "steps": [*raw["steps"], BY_DS]})


def _files(home: Path) -> dict[str, str]:
    """sha256 of every staged/exported part and manifest (records and reports carry run ids and times)."""
    store = home / "store"
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file() and (p.suffix == ".parquet" or p.name == "_manifest.json")
            and not p.relative_to(store).parts[0].startswith("_")}


def _day_by_day(pipeline) -> None:
    for i in range(DAYS):
        run_pipeline(pipeline, window_of_day(pipeline, FIRST + timedelta(days=i)), resolver=env_resolver)


def _chunked(pipeline) -> None:
    last = FIRST + timedelta(days=DAYS - 1)
    run_pipeline(pipeline, Window(window_of_day(pipeline, FIRST).start, window_of_day(pipeline, last).end),
                 resolver=env_resolver)


def _sorted_rows(rows_of) -> dict[str, list[tuple]]:
    return {t: sorted(rows_of(f"SELECT * FROM {t}"), key=repr) for t in TABLES}


def _drop_published(request, backend: str) -> None:
    """The chunked run starts from an empty warehouse too (DuckDB: the new home's file)."""
    if backend == "postgres":
        import psycopg
        from support.warehouse_fixtures import PG

        with psycopg.connect(dbname=request.getfixturevalue("pg_db"), autocommit=True, **PG) as con:
            con.execute("DROP SCHEMA analytics CASCADE")


def test_a_chunk_is_byte_identical_to_its_dates_one_by_one(data_home, rows_of, request, monkeypatch, caplog):
    backend = request.node.callspec.params["rows_of"]
    _day_by_day(_pipeline(1))
    files_one, rows_one = _files(data_home), _sorted_rows(rows_of)
    assert sum(1 for f in files_one if f.startswith("raw/orders/") and f.endswith(".parquet")) == DAYS
    assert all(rows_one.values())

    # The same dates again into a fresh store and warehouse, as one chunk.
    other = data_home.parent / "chunked"
    other.mkdir()
    shutil.copy(data_home / "source.db", other / "source.db")
    monkeypatch.setenv("DAGSPEC_HOME", str(other))
    _drop_published(request, backend)
    if backend == "duckdb":
        rows_of = _rows_in(other)
    with caplog.at_level(logging.INFO, logger="dagspec"):
        _chunked(_pipeline(DAYS))
    assert any(f"one read for {DAYS} partitions" in r.getMessage() for r in caplog.records)
    loads = [r.getMessage() for r in caplog.records if "in one delete + insert" in r.getMessage()]
    assert len(loads) == 2 and all(m.split(": ")[1].startswith(f"{DAYS} batches") for m in loads)  # both targets
    transforms = sorted(r.getMessage() for r in caplog.records if "batches in one statement" in r.getMessage())
    assert transforms == [f"transform daily_revenue: {DAYS} batches in one statement (SQL parsed 1 time(s))",
                          f"transform orders_by_ds: {DAYS} batches in one statement (SQL parsed {DAYS} time(s))"]
    assert _files(other) == files_one
    assert _sorted_rows(rows_of) == rows_one


def _rows_in(home: Path):
    from support.expected import warehouse_rows

    return lambda sql: warehouse_rows(home / "warehouse.duckdb", sql)


def test_chunks_stop_at_holes_and_at_the_size():
    def day(i: int) -> Batch:
        lo = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=i)
        return Batch(lo.date(), lo, lo + timedelta(days=1))

    batches = [day(0), day(1), day(2), day(5), day(6)]
    assert [[b.batch_date.day for b in c] for c in chunks_of(batches, 2)] == [[1, 2], [3], [6, 7]]
    assert [len(c) for c in chunks_of(batches, 1)] == [1] * 5


def test_batch_size_one_reads_per_partition(data_home, caplog):
    with caplog.at_level(logging.INFO, logger="dagspec"):
        _chunked(_pipeline(1))
    assert not any("one read for" in r.getMessage() for r in caplog.records)
    assert sum(1 for f in _files(data_home) if f.startswith("raw/orders/") and f.endswith(".parquet")) == DAYS


@pytest.mark.parametrize("size", [0, 367])
def test_batch_size_is_bounded(size):
    from pydantic import ValidationError

    from dagspec.spec.model import Pipeline

    raw = json.loads((definitions_dir() / "orders_daily.json").read_text())
    with pytest.raises(ValidationError, match="batch_size"):
        Pipeline.model_validate({**raw, "batch_size": size})


def test_a_chunk_flushes_its_check_and_run_records_once_not_per_date(data_home, monkeypatch):
    from dagspec import store_io
    from dagspec.cli.local_runs import run_days
    from dagspec.store import Store

    flushes, durable_writes = [], []
    real_sync, real_put = store_io.sync_file_system, Store._put_json
    monkeypatch.setattr("dagspec.store_records.sync_file_system", lambda path: (flushes.append(path), real_sync(path)))

    def put(self, path, record, durable=True):
        if durable:
            durable_writes.append(path)
        return real_put(self, path, record, durable)

    monkeypatch.setattr(Store, "_put_json", put)
    pipeline = _pipeline(DAYS)
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    assert run_days("orders_daily", pipeline, days, keep_going=False, chunk=DAYS) == []
    checks = [p for p in durable_writes if "/_checks/" in p]
    runs = [p for p in durable_writes if "/_runs/" in p and "/published/" not in p]
    assert checks == [] and runs == []  # every check and run record of the chunk waits for the one flush
    assert len(flushes) == 3  # the check records once, the run records at the start and at the end
    store = Store.from_connection(env_resolver(pipeline.store.conn_id))
    for i in range(DAYS):
        day = FIRST + timedelta(days=i)
        assert store.checked("orders_daily", "check_orders", day)["passed"] is True
        assert store.run_state("orders_daily", day) == "success"


def test_a_chunked_transform_names_a_history_input_it_lacks(data_home):
    from dagspec.errors import StepFailed

    raw = json.loads((definitions_dir() / "orders_daily.json").read_text())
    bad = {**BY_DS, "query": "SELECT * FROM {{ history('last_week') }} AS h"}
    from dagspec.spec.model import Pipeline

    pipeline = Pipeline.model_validate({**raw, "batch_size": DAYS, "steps": [*raw["steps"], bad]})
    with pytest.raises(StepFailed, match=r"history\('last_week'\) is not in the step's 'history' \(it has: none\)"):
        _chunked(pipeline)
