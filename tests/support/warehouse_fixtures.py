"""Fixtures for tests against a real PostgreSQL: a fresh database per test, dropped afterwards."""

from __future__ import annotations

import uuid

import pytest
from conftest import need

from support.expected import warehouse_rows

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _admin():
    import psycopg

    try:
        return psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=3, **PG)
    except psycopg.OperationalError:
        return None


@pytest.fixture()
def pg_db(monkeypatch):
    """A new database `ds_wh_<hex>`; AIRFLOW_CONN_DAGSPEC_WAREHOUSE points at it. Yields its name."""
    admin = _admin()
    need(admin is not None, "PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth)")
    name = f"ds_wh_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", f"postgres://postgres@127.0.0.1:5432/{name}")
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_rows(dbname: str, sql: str, params=None) -> list[tuple]:
    import psycopg

    with psycopg.connect(dbname=dbname, **PG) as con:
        return con.execute(sql, params).fetchall()


@pytest.fixture(params=["duckdb", "postgres"])
def rows_of(request, data_home):
    """A function running SQL in the warehouse under test (DuckDB file or a fresh PostgreSQL database)."""
    if request.param == "duckdb":
        return lambda sql: warehouse_rows(data_home / "warehouse.duckdb", sql)
    db = request.getfixturevalue("pg_db")
    return lambda sql: pg_rows(db, sql)
