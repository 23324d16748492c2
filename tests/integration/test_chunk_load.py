"""A chunk of batches loaded in one DELETE + INSERT leaves the table exactly as loading its batches one by one:
the same rows and batch columns, snapshot pruning, sub-daily keys, post-load SQL, and nothing on failure.
Against the embedded DuckDB and a fresh PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dagspec.connections import env_resolver
from dagspec.partitions import PartitionKey
from dagspec.warehouse import open_warehouse

DAYS = [date(2025, 3, 1) + timedelta(days=i) for i in range(6)]
HOURS = [PartitionKey.sub_daily(datetime(2025, 3, 1, tzinfo=UTC) + timedelta(hours=h)) for h in range(4)]


def rows_for(i: int) -> str:
    # a '%' in a value: PostgreSQL's driver must not read it as a placeholder among the chunk's parameters
    return f"SELECT * FROM (VALUES ({i}, 'ann {i}%'), ({i + 100}, 'bob''s; DROP TABLE x --')) AS c(customer_id, name)"


def session():
    return open_warehouse(env_resolver("dagspec_warehouse")).session()


def table(rows_of, name: str) -> list[tuple]:
    return sorted(rows_of(f"SELECT * FROM mart.{name}"), key=repr)


def one_by_one(name: str, keys: list, keep: int | None = None, after: tuple[str, ...] = ()) -> dict:
    with session() as s:
        return {k: s.replace_batch("mart", name, k, rows_for(i), {}, keep=keep, after=after) for i, k in enumerate(keys)}


def chunked(name: str, keys: list, keep: int | None = None, after: tuple[str, ...] = ()) -> dict:
    with session() as s:
        return s.replace_batches("mart", name, [(k, rows_for(i)) for i, k in enumerate(keys)], {}, keep=keep, after=after)


@pytest.mark.parametrize("keys", [DAYS, HOURS], ids=["daily", "hourly"])
@pytest.mark.parametrize("keep", [None, 2])
def test_a_chunk_load_equals_its_batches_one_by_one(rows_of, keys, keep):
    # Both tables already hold an older batch and a stale copy of the chunk's second one.
    for name in ("single", "chunk"):
        one_by_one(name, [keys[0] - timedelta(days=1) if isinstance(keys[0], date) else keys[0]])
    counts_one = one_by_one("single", keys, keep)
    counts_chunk = chunked("chunk", keys, keep)
    assert counts_chunk == counts_one
    assert table(rows_of, "chunk") == table(rows_of, "single")
    assert len(table(rows_of, "chunk")) == 2 * (keep or len(keys) + (1 if isinstance(keys[0], date) else 0))


def test_a_chunk_runs_each_post_load_statement_once_inside_the_load(rows_of):
    chunked("chunk", DAYS[:2])
    after = ("COMMENT ON TABLE mart.chunk IS 'loaded'", "ANALYZE mart.chunk")
    assert chunked("chunk", DAYS, after=after) == {d: 2 for d in DAYS}
    assert len(table(rows_of, "chunk")) == 2 * len(DAYS)


def test_a_failing_chunk_leaves_every_batch_as_it_was(rows_of):
    chunked("chunk", DAYS[:3])
    before = table(rows_of, "chunk")
    parts = [(d, rows_for(i)) for i, d in enumerate(DAYS)]
    parts[-1] = (DAYS[-1], "SELECT 1 / (customer_id - customer_id) AS customer_id, name FROM (" + rows_for(9) + ") s")
    with session() as s, pytest.raises(Exception):  # noqa: B017 (each engine raises its own error type)
        s.replace_batches("mart", "chunk", parts, {})
    assert table(rows_of, "chunk") == before


def test_a_chunk_refuses_a_changed_shape_and_a_mixed_grain(rows_of):
    chunked("chunk", DAYS[:2])
    with session() as s, pytest.raises(ValueError, match="no longer matches table mart.chunk"):
        s.replace_batches("mart", "chunk", [(DAYS[2], "SELECT 1 AS other")], {})
    with session() as s, pytest.raises(ValueError, match="mixes daily and sub-daily"):
        s.replace_batches("mart", "chunk", [(DAYS[0], rows_for(0)), (HOURS[0], rows_for(1))], {})
    assert len(table(rows_of, "chunk")) == 4
