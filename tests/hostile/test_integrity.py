"""Hostile cases for integrity: what is published is exactly what was validated, a half-done date is never
taken as done, a killed writer's leftovers stay out of the table's folder, commits are durable."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, insert, select

from dagspec.runner import run_step
from dagspec.sample_data import orders
from dagspec.spec.model import Pipeline
from dagspec.stages import StepFailed
from helpers import source_orders, warehouse_rows

DAY = date(2025, 3, 1)
START = datetime(2025, 3, 1, tzinfo=timezone.utc)
END = datetime(2025, 3, 2, tzinfo=timezone.utc)


def _null_status_copy(db) -> None:
    """`orders_bad`: the day's orders again, every status NULL (what a careless second definition stages)."""
    engine = create_engine(f"sqlite:///{db}")
    bad = Table("orders_bad", MetaData(), *[Column(c.name, c.type) for c in orders.columns])
    bad.create(engine)
    with engine.begin() as conn:
        rows = [dict(r._mapping) | {"status": None} for r in conn.execute(select(orders))]
        conn.execute(insert(bad), rows)
    engine.dispose()


def _pipeline(dag_id: str, source_table: str, steps: list[dict] = ()) -> Pipeline:
    return Pipeline.model_validate({"dag_id": dag_id, "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": source_table, "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}}, *steps]})


CHECKED = [
    {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "status"}}]},
    {"id": "publish_orders", "kind": "publish", "input": "extract_orders", "table": {"schema": "pin_x", "table": "orders"}},
]


def _published(data_home) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(data_home / "warehouse.duckdb"), read_only=True)
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pin_x'").fetchone()[0]
        return con.execute("SELECT order_id, status FROM pin_x.orders ORDER BY order_id").fetchall() if exists else []
    finally:
        con.close()


@pytest.mark.parametrize("severity", ["fail", "warn"])
def test_publish_refuses_a_partition_restaged_after_it_was_validated(data_home, severity):
    """x.extract -> x.validate (passes) -> y.extract (NULL statuses into the same raw.orders) -> x.publish."""
    _null_status_copy(data_home / "source.db")
    steps = [dict(CHECKED[0], expectations=[dict(CHECKED[0]["expectations"][0], severity=severity)]), CHECKED[1]]
    x = _pipeline("pin_x", "orders", steps)
    y = _pipeline("pin_y", "orders_bad")
    run_step(x, "extract_orders", START, END)
    run_step(x, "check_orders", START, END)
    run_step(y, "extract_orders", START, END)
    with pytest.raises(StepFailed, match=r"partition raw\.orders batch_date=2025-03-01 changed since check_orders "
                                         r"validated it; re-run from extract_orders"):
        run_step(x, "publish_orders", START, END)
    assert _published(data_home) == []

    # Re-run from the extract: the checked version is the one published, to the row.
    for step in ("extract_orders", "check_orders", "publish_orders"):
        run_step(x, step, START, END)
    expected = [(o[0], o[3]) for o in source_orders(data_home / "source.db", DAY)]
    assert _published(data_home) == expected and all(status is not None for _, status in expected)


def test_a_transform_downstream_of_the_check_refuses_the_restaged_partition(data_home):
    _null_status_copy(data_home / "source.db")
    x = _pipeline("pin_t", "orders", [CHECKED[0], {
        "id": "daily_revenue", "kind": "transform", "after": ["check_orders"], "sql": "orders/daily_revenue.sql",
        "inputs": ["extract_orders"], "target": {"schema": "pin_t", "table": "revenue"}}])
    run_step(x, "extract_orders", START, END)
    run_step(x, "check_orders", START, END)
    run_step(_pipeline("pin_y", "orders_bad"), "extract_orders", START, END)
    with pytest.raises(StepFailed, match="changed since check_orders validated it"):
        run_step(x, "daily_revenue", START, END)


def test_a_reader_with_no_record_of_the_check_refuses(data_home):
    """Validate never ran for the batch (a task marked success by hand, a lost record): nothing is read."""
    x = _pipeline("pin_n", "orders", CHECKED)
    run_step(x, "extract_orders", START, END)
    with pytest.raises(StepFailed, match="no record that check_orders validated it"):
        run_step(x, "publish_orders", START, END)
    assert _published(data_home) == []


def test_a_reader_not_downstream_of_the_check_is_not_pinned(data_home):
    """A publish that does not wait for the validate step reads the partition as it is (nothing was promised)."""
    x = _pipeline("pin_u", "orders", [dict(CHECKED[1], after=["extract_orders"]), dict(CHECKED[0], after=["extract_orders"])])
    run_step(x, "extract_orders", START, END)
    run_step(x, "publish_orders", START, END)
    assert len(_published(data_home)) == len(source_orders(data_home / "source.db", DAY))
