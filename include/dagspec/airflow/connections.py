"""Connections through Airflow (metadata DB, env, secrets backends), with the embedded demo defaults."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo, ConnectionNotFound, embedded_default, parse_connection

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger("dagspec")


def airflow_resolver(conn_id: str) -> ConnectionInfo:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return _default_or_missing(conn_id)
    return _info(conn_id, conn)


def _info(conn_id: str, conn: Connection) -> ConnectionInfo:
    return ConnectionInfo(
        conn_id=conn_id,
        conn_type=conn.conn_type or "",
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=conn.extra_dejson or {},
    )


def cli_resolver(conn_id: str) -> ConnectionInfo:
    """For the `dagspec` command, outside any task: AIRFLOW_CONN_<ID> first, then Airflow's secrets backends
    and metadata DB (what `airflow connections add` wrote), then the embedded defaults. Without it a
    connection defined in Airflow would be silently replaced by the embedded default (the demo registry,
    the demo warehouse) when the same command runs from a shell."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        return parse_connection(conn_id, raw)
    if not airflow_home_known():
        return _default_or_missing(conn_id)
    try:
        from airflow.exceptions import AirflowNotFoundException
        from airflow.models.connection import Connection
    except ImportError:  # the library without Airflow: env and defaults only
        return _default_or_missing(conn_id)
    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return _default_or_missing(conn_id)
    except Exception as exc:  # no metadata DB yet (a fresh checkout): the embedded defaults still work
        log.debug("Airflow's connections are not readable (%s); using env and defaults for %s",
                  type(exc).__name__, conn_id)
        return _default_or_missing(conn_id)
    return _info(conn_id, conn)


def _default_or_missing(conn_id: str) -> ConnectionInfo:
    default = embedded_default(conn_id)
    if default is None:
        raise ConnectionNotFound(conn_id)
    return default


def airflow_home_known() -> bool:
    """Whether there is an Airflow installation to ask: AIRFLOW_HOME or a database URL set, or the `make up`
    stack's home in this checkout (then used as AIRFLOW_HOME, as the Makefile does). Importing Airflow with
    none of them would create ~/airflow as a side effect."""
    if os.environ.get("AIRFLOW_HOME") or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
        return True
    from dagspec.paths import PROJECT_ROOT

    stack_home = PROJECT_ROOT / ".local" / "airflow"
    if stack_home.is_dir():
        os.environ["AIRFLOW_HOME"] = str(stack_home)
        return True
    return False
