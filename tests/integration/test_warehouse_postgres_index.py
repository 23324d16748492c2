"""A PostgreSQL published table is indexed on the columns a batch is replaced and read by."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from support.warehouse_fixtures import pg_rows

from dagspec.connections import env_resolver
from dagspec.partitions import PartitionKey
from dagspec.warehouse import open_warehouse
from dagspec.warehouse.postgres_index import index_name

pytestmark = pytest.mark.service
DAY = date(2025, 3, 1)


def _indexes(db: str, schema: str, table: str) -> dict[str, str]:
    return dict(
        pg_rows(db, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", [schema, table])
    )


def test_a_published_table_gets_its_batch_date_index_and_the_delete_uses_it(pg_db):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        s.replace_batch("mart", "orders", DAY, "SELECT 1 AS id, 'x'::text AS v", {})
        got = _indexes(pg_db, "mart", "orders")
        assert list(got) == [index_name("mart", "orders", "batch_date")]
        assert got[index_name("mart", "orders", "batch_date")].endswith("USING btree (batch_date)")
        # 200k rows over 400 days: a batch's delete must not scan them all.
        s.execute("INSERT INTO mart.orders SELECT g, 'v', DATE '2024-01-01' + (g % 400) FROM generate_series(1, 200000) g")
        s.execute("ANALYZE mart.orders")
        plan = "\n".join(
            r[0] for r in s.execute("EXPLAIN DELETE FROM mart.orders WHERE batch_date = %(d)s", {"d": date(2024, 6, 1)})
        )
        assert index_name("mart", "orders", "batch_date") in plan and "Seq Scan" not in plan, plan
        # A second batch, the table already there: still one index.
        s.replace_batch("mart", "orders", date(2025, 3, 2), "SELECT 2 AS id, 'y'::text AS v", {})
        assert len(_indexes(pg_db, "mart", "orders")) == 1


def test_a_sub_daily_table_is_indexed_on_batch_start_too(pg_db):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    hour = PartitionKey.sub_daily(datetime(2025, 3, 1, 13, tzinfo=UTC))
    with wh.session() as s:
        s.replace_batch("mart", "hourly", hour, "SELECT 1 AS id", {})
    assert sorted(_indexes(pg_db, "mart", "hourly")) == sorted(
        index_name("mart", "hourly", c) for c in ("batch_date", "batch_start")
    )


def test_a_full_refresh_table_keeps_its_index_after_the_swap(pg_db):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        for day in (DAY, date(2025, 3, 2)):
            s.replace_table("mart", "snap", day, "SELECT 1 AS id", {})
    assert list(_indexes(pg_db, "mart", "snap")) == [index_name("mart", "snap", "batch_date")]


def test_index_names_are_bounded_plain_and_distinct_for_hostile_table_names():
    long_a, long_b = "a" * 60 + "_x", "a" * 60 + "_y"
    names = [index_name("s", t, "batch_date") for t in (long_a, long_b, 'Ev"il; DROP', "orders")]
    assert all(len(n.encode()) <= 63 and n.replace("_", "").isalnum() and n == n.lower() for n in names)
    assert len(set(names)) == 4
    assert index_name("s", "orders", "batch_date") != index_name("t", "orders", "batch_date")
