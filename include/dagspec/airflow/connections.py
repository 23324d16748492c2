"""Connections through Airflow (metadata DB, env, secrets backends), with the embedded demo defaults."""

from __future__ import annotations

from dagspec.connections import ConnectionInfo, ConnectionNotFound, embedded_default


def airflow_resolver(conn_id: str) -> ConnectionInfo:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        default = embedded_default(conn_id)
        if default is None:
            raise ConnectionNotFound(conn_id) from None
        return default
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
