"""Fixtures of the integrity cases: a second source table with NULL statuses, a PostgreSQL source whose
gate step blocks on an advisory lock, and a writer to kill mid-partition."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import Column, MetaData, Table, create_engine, insert, select

from dagspec.sample_data import orders

LOCK = 77_012_345  # the advisory lock the gate step waits on while the test holds it


def null_status_copy(db) -> None:
    """`orders_bad`: the day's orders again, every status NULL (what a careless second definition stages)."""
    engine = create_engine(f"sqlite:///{db}")
    bad = Table("orders_bad", MetaData(), *[Column(c.name, c.type) for c in orders.columns])
    bad.create(engine)
    with engine.begin() as conn:
        rows = [dict(r._mapping) | {"status": None} for r in conn.execute(select(orders))]
        conn.execute(insert(bad), rows)
    engine.dispose()


def pg_admin():
    import psycopg

    try:
        return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True,
                               connect_timeout=5)
    except psycopg.Error as exc:
        from conftest import need

        need(False, f"PostgreSQL on 127.0.0.1:5432 (user postgres, db test): {exc}")


@pytest.fixture()
def pg_orders():
    schema = f"pin_kill_{os.getpid()}"
    with pg_admin() as c:
        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        c.execute(f"CREATE SCHEMA {schema}")
        c.execute(f"CREATE TABLE {schema}.orders (order_id int PRIMARY KEY, status text NOT NULL, "
                  "ordered_at timestamptz NOT NULL)")
        c.execute(f"INSERT INTO {schema}.orders SELECT i, 'placed', TIMESTAMPTZ '2025-03-01 00:00+00' + i * "
                  "INTERVAL '1 minute' FROM generate_series(1, 3) AS i")
    yield schema
    with pg_admin() as c:
        c.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def gate_definition(folder, schema: str) -> None:
    folder.mkdir()
    steps = [
        {"id": "extract_orders", "kind": "extract", "target": {"schema": "raw", "table": "orders"},
         "source": {"conn_id": "pin_pg", "schema": schema, "table": "orders", "incremental_column": "ordered_at"}},
        {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "status"}}]},
        # Stands for any slow step after the extract: it waits while the test holds the advisory lock.
        {"id": "gate", "kind": "extract", "target": {"schema": "raw", "table": "gate"}, "source": {
            "conn_id": "pin_pg", "query": f"SELECT count(*) AS passed FROM (SELECT pg_advisory_xact_lock({LOCK})) AS l"}},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
         "table": {"schema": "pin_k", "table": "orders"}},
    ]
    (folder / "pin_kill.json").write_text(json.dumps({"dag_id": "pin_kill", "start_date": "2025-01-01", "steps": steps}))


WRITER = r"""
import sys, time
from datetime import date
from pathlib import Path
import pyarrow as pa
from dagspec.store import Store

schema = pa.schema([("id", pa.int64()), ("pad", pa.string())])

def batches():
    for i in range(1000):
        yield pa.record_batch([pa.array(range(i * 5000, (i + 1) * 5000)), pa.array(["x" * 200] * 5000)], schema=schema)
        if i == 3:
            Path(sys.argv[2]).write_text("half")
            time.sleep(600)

Store(sys.argv[1]).write_partition("raw", "t", date(2025, 3, 2), schema, batches())
"""
