"""Snapshot mode of a published table: only the greatest batch_dates stay, pruned in the load's transaction."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from support.expected import warehouse_rows

from dagspec.connections import env_resolver
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.warehouse import open_warehouse

SNAPSHOT = "SELECT * FROM (VALUES (1, 'ann'), (2, 'bob'), (3, 'cy')) AS c(customer_id, name)"
DAYS = [date(2025, 3, 1) + timedelta(days=i) for i in range(7)]


def publish(day: date, keep: int | None, select: str = SNAPSHOT) -> int:
    with open_warehouse(env_resolver("dagspec_warehouse")).session() as s:
        return s.replace_batch("mart", "customers", day, select, {}, keep=keep)


def batches(rows_of) -> list[tuple]:
    return rows_of("SELECT batch_date, count(*) FROM mart.customers GROUP BY batch_date ORDER BY batch_date")


@pytest.mark.parametrize("keep, want", [(1, DAYS[-1:]), (2, DAYS[-2:])])
def test_seven_daily_snapshots_keep_only_the_latest_batches(rows_of, keep, want):
    for day in DAYS:
        assert publish(day, keep) == 3
    assert batches(rows_of) == [(d, 3) for d in want]
    assert rows_of("SELECT count(*) FROM mart.customers") == [(3 * keep,)]


def test_rerunning_an_older_day_never_removes_newer_batches(rows_of):
    for day in DAYS:
        publish(day, 2)
    publish(DAYS[0], 2)  # an old day re-run: it is not among the 2 greatest, so it is pruned again
    assert batches(rows_of) == [(DAYS[-2], 3), (DAYS[-1], 3)]


def test_without_snapshot_every_batch_stays(rows_of):
    for day in DAYS:
        publish(day, None)
    assert rows_of("SELECT count(*) FROM mart.customers") == [(21,)]


def test_a_failing_load_leaves_the_snapshot_as_it_was(rows_of):
    publish(DAYS[0], 1)
    with pytest.raises(Exception):  # noqa: B017 (each engine raises its own error type)
        publish(DAYS[1], 1, "SELECT 1 / (customer_id - customer_id) AS customer_id, name FROM (" + SNAPSHOT + ") s")
    assert batches(rows_of) == [(DAYS[0], 3)]


def test_a_snapshot_publish_step_prunes_through_the_pipeline(tmp_path, data_home):
    steps = [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
         "table": {"schema": "mart", "table": "orders_snapshot", "mode": "snapshot", "keep": 2}},
    ]
    path = tmp_path / "t_snapshot.json"
    path.write_text(json.dumps({"dag_id": "t_snapshot", "start_date": "2025-01-01", "steps": steps}))
    pipeline = load_definition(path)
    for day in DAYS[:4]:
        run_pipeline(pipeline, window_of_day(pipeline, day))
    got = warehouse_rows(data_home / "warehouse.duckdb",
                         "SELECT DISTINCT batch_date FROM mart.orders_snapshot ORDER BY batch_date")
    assert got == [(DAYS[2],), (DAYS[3],)]
