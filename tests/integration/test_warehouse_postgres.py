"""PostgreSQL as the warehouse: staged Parquet in through COPY, batches replaced in one transaction, streamed out."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from support.expected import expected_revenue, source_orders
from support.warehouse_fixtures import pg_rows

from dagspec.connections import env_resolver
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.warehouse import open_warehouse
from dagspec.warehouse.base import SchemaDrift

pytestmark = pytest.mark.service
ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 3, 1)


def run(day: date, name: str = "orders_daily.json"):
    pipeline = load_definition(ROOT / "dags" / "definitions" / name)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def test_orders_pipeline_on_postgres_gives_exact_values_and_reruns_identically(data_home, pg_db):
    run(DAY)
    assert pg_rows(pg_db, "SELECT * FROM analytics.daily_revenue ORDER BY channel") == expected_revenue(
        data_home / "source.db", DAY)
    orders = pg_rows(pg_db, "SELECT order_id, amount FROM analytics.orders ORDER BY order_id")
    assert orders == [(o[0], o[5]) for o in source_orders(data_home / "source.db", DAY)]
    before = pg_rows(pg_db, "SELECT * FROM analytics.orders ORDER BY order_id")
    run(date(2025, 3, 2))
    run(DAY)
    assert pg_rows(pg_db, "SELECT * FROM analytics.orders WHERE batch_date = %s ORDER BY order_id", [DAY]) == before
    assert pg_rows(pg_db, "SELECT batch_date, count(*) FROM analytics.daily_revenue GROUP BY 1 ORDER BY 1") == [
        (DAY, 4), (date(2025, 3, 2), 4)]


def test_copy_keeps_nulls_empty_strings_decimals_and_times(pg_db):
    table = pa.table({
        "id": pa.array([1, 2, 3], pa.int64()),
        "name": ["a,\"b\"\nc", "", None],
        "amount": pa.array([Decimal("1.50"), None, Decimal("-3.25")], pa.decimal128(12, 2)),
        "at": pa.array([0, 1_700_000_000_000_001, None], pa.timestamp("us")),
        "day": pa.array([0, 20_000, None], pa.date32()),
        "flag": [True, False, None],
    })
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        rel = s.expose("__ref_t", table)
        got = s.arrow(f"SELECT * FROM {rel} ORDER BY id", {}).read_all()
    assert got.to_pylist() == table.to_pylist()
    assert got.schema == table.schema


def test_replace_batch_is_one_transaction_and_refuses_schema_drift(pg_db):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        s.replace_batch("mart", "t", DAY, "SELECT 1 AS id, 'x'::text AS v", {})
        s.replace_batch("mart", "t", date(2025, 3, 2), "SELECT 2 AS id, 'y'::text AS v", {})
        with pytest.raises(SchemaDrift, match="missing column v"):
            s.replace_batch("mart", "t", DAY, "SELECT 5 AS id", {})
        with pytest.raises(Exception, match="division by zero"):
            s.replace_batch("mart", "t", DAY, "SELECT 1 / (id - 1) AS id, 'z'::text AS v FROM (VALUES (1)) x(id)", {})
    assert pg_rows(pg_db, "SELECT id, v, batch_date FROM mart.t ORDER BY id") == [
        (1, "x", DAY), (2, "y", date(2025, 3, 2))]


def test_arrow_streams_through_a_server_side_cursor(pg_db):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        reader = s.arrow("SELECT g AS n, (g % 7)::numeric(5,1) AS m FROM generate_series(1, %(top)s) g",
                         {"top": 25_000}, batch_rows=10_000)
        sizes = [b.num_rows for b in reader]
        # The named cursor exists on the server while the result streams (psycopg's server-side cursor).
    assert sizes == [10_000, 10_000, 5_000]


def test_percent_in_sql_with_parameters(pg_db):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        got = s.arrow("SELECT v FROM (VALUES ('a%b'), ('c')) x(v) WHERE v LIKE 'a%' AND 1 = %(one)s", {"one": 1})
        assert got.read_all().column("v").to_pylist() == ["a%b"]
