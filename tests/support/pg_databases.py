"""A scratch PostgreSQL database for one test module: created fresh, dropped (with its sessions) afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conftest import need


def pg_admin(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname, autocommit=True,
                           connect_timeout=5)


@contextmanager
def scratch_database(name: str, create_options: str = "") -> Iterator[str]:
    """Yields `name` (a plain identifier chosen by the test) as an empty database; a failure (not a skip)
    under CI=true when PostgreSQL is not there."""
    import psycopg

    try:
        admin = pg_admin()
    except psycopg.Error as exc:
        need(False, f"PostgreSQL on 127.0.0.1:5432 (user postgres): {exc}")
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name} {create_options}")
    try:
        yield name
    finally:
        with pg_admin() as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def conn_json(name: str) -> str:
    """An Airflow connection (as AIRFLOW_CONN_* JSON) to the scratch database `name`."""
    import json

    return json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": name})
