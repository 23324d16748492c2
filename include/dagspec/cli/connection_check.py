"""`dagspec validate`'s connection check: every connection a definition names exists where runs will look.

Only when the connection store can be read (AIRFLOW_CONN_* variables, then Airflow's secrets
backends and metadata DB); otherwise validate says the check was not made rather than guess,
since a connection missing here may well exist in the Airflow that runs the DAG.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagspec.spec.errors import printable


def store_unreadable() -> str | None:
    """Why Airflow's connection store cannot be read from here, or None when it can."""
    from dagspec.airflow.connections import airflow_home_known

    if not airflow_home_known():
        return "no Airflow here to ask (set AIRFLOW_HOME, or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
    try:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection
    except ImportError:
        return "Airflow is not installed"
    try:
        # Airflow's lookup logs and swallows a metadata DB it cannot read (then every connection is "missing"):
        # read the connection table directly first.
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(Connection.conn_id).limit(1).all()
        Connection.get_connection_from_secrets("dagspec_validate_probe")
    except AirflowNotFoundException:
        return None
    except Exception as exc:  # a fresh home with no metadata DB, a backend that refuses us
        return f"Airflow's connections are not readable ({type(exc).__name__}: is its metadata DB migrated?)"
    return None


def named_connections(document: Any, loc: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(JSON path, conn_id) of every connection the definition names itself (defaults are not named)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if isinstance(key, str) and key.endswith("conn_id") and isinstance(value, str):
                yield (*loc, key), value
            else:
                yield from named_connections(value, (*loc, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from named_connections(value, (*loc, i))


def missing_connections(paths: list[Path], shown_from: Path | None = None) -> list[str]:
    """One problem line per named connection nobody defined, in validate's format."""
    from dagspec.airflow.connections import cli_resolver
    from dagspec.connections import ConnectionNotFound

    known: dict[str, bool] = {}
    lines = []
    for path in paths:
        for loc, conn_id in named_connections(json.loads(path.read_bytes())):
            if conn_id not in known:
                try:
                    cli_resolver(conn_id)
                    known[conn_id] = True
                except ConnectionNotFound:
                    known[conn_id] = False
                except Exception:  # defined, but not usable as written: the run reports it with its reason
                    known[conn_id] = True
            if not known[conn_id]:
                where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
                name = os.path.relpath(path, shown_from) if shown_from else path.name
                lines.append(f"{printable(name)}: {where}: connection {conn_id!r} is not defined (fix: create it in "
                             f"Airflow, `airflow connections add {conn_id} ...`, or set "
                             f"AIRFLOW_CONN_{conn_id.upper()})")
    return lines
