"""Which driver a `redshift` connection uses: psycopg (the default; libpq speaks Redshift's protocol) or Amazon's
`redshift_connector` (`extra.driver`), which also signs in with IAM (extra.iam, cluster_identifier, db_user...).

The Redshift session only needs a DB-API connection's cursor, a transaction and close; ConnectorConnection gives
redshift_connector's connection psycopg's shape for those (named `%(x)s` parameters, column descriptions with
names, a transaction block), so the same Redshift session logic runs on either driver. Neither path reaches
the PostgreSQL-only code (COPY FROM STDIN, server-side cursors): the Redshift session overrides those.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dagspec.connections import ConnectionInfo
from dagspec.warehouse.nesting import JoinsNested

DRIVERS = ("psycopg", "redshift_connector")
# Extra keys passed on to redshift_connector.connect as they are (its own names: IAM sign-in, serverless).
CONNECTOR_EXTRA = ("iam", "cluster_identifier", "region", "db_user", "db_groups", "auto_create", "profile",
                   "access_key_id", "secret_access_key", "session_token", "is_serverless", "serverless_work_group",
                   "serverless_acct_id", "ssl", "sslmode", "timeout", "tcp_keepalive")


def driver_of(info: ConnectionInfo) -> str:
    driver = info.extra.get("driver", "psycopg")
    if driver not in DRIVERS:
        raise ValueError(f"warehouse connection {info.conn_id!r} (redshift): extra.driver is {str(driver)[:40]!r}; "
                         f"use one of {', '.join(DRIVERS)} (psycopg when omitted)")
    return driver


def connector_kwargs(info: ConnectionInfo, default_port: int) -> dict[str, Any]:
    """redshift_connector.connect's arguments for the connection (None values left out: its defaults stand)."""
    kwargs: dict[str, Any] = {
        "host": info.host, "port": info.port or default_port, "user": info.login, "password": info.password,
        "database": info.schema or info.extra.get("database"), "application_name": "dagspec",
        "timeout": int(info.extra["connect_timeout"]) if info.extra.get("connect_timeout") else None,
    }
    kwargs.update({k: info.extra[k] for k in CONNECTOR_EXTRA if k in info.extra})
    return {k: v for k, v in kwargs.items() if v is not None}


def connect_with_connector(info: ConnectionInfo, default_port: int) -> ConnectorConnection:
    try:
        import redshift_connector
    except ImportError:
        raise ValueError(f"warehouse connection {info.conn_id!r} asks for extra.driver 'redshift_connector', which "
                         "is not installed: pip install 'dagspec[redshift]' (or drop extra.driver for psycopg)") from None
    try:
        con = redshift_connector.connect(**connector_kwargs(info, default_port))
    except Exception as exc:  # the driver raises its own errors, OSError and socket errors alike
        raise ConnectionError(info.scrub(f"warehouse connection {info.conn_id!r} (redshift, redshift_connector): "
                                         f"{type(exc).__name__}: {exc}")) from None
    con.autocommit = True  # as psycopg's: each statement its own unless inside transaction()
    wrapped = ConnectorConnection(con)
    with wrapped.cursor() as cur:
        cur.execute("SET timezone TO 'UTC'")  # what LIBPQ_OPTIONS does for psycopg: timestamps read as UTC
    return wrapped


@dataclass(frozen=True)
class Column:
    """A result column as psycopg describes it (the Redshift session reads these four)."""

    name: str
    type_code: int
    precision: int | None
    scale: int | None


class ConnectorCursor:
    def __init__(self, cur: Any):
        self._cur = cur
        cur.paramstyle = "pyformat"  # the session's SQL binds %(name)s, as with psycopg

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self._cur.execute(sql, params) if params else self._cur.execute(sql)

    def fetchall(self) -> list[tuple]:
        return [tuple(r) for r in self._cur.fetchall()]

    @property
    def description(self) -> list[Column] | None:
        # DB-API's 7-tuple: (name, type_code, display_size, internal_size, precision, scale, null_ok).
        got = self._cur.description
        return [Column(str(d[0]), int(d[1]), d[4], d[5]) for d in got] if got else None

    def close(self) -> None:
        self._cur.close()


class ConnectorConnection(JoinsNested):
    def __init__(self, con: Any):
        self._con = con

    @contextmanager
    def cursor(self) -> Iterator[ConnectorCursor]:
        cur = ConnectorCursor(self._con.cursor())
        try:
            yield cur
        finally:
            cur.close()

    @contextmanager
    def outermost_transaction(self) -> Iterator[None]:
        """One transaction block; a nested one joins it (Redshift has no savepoints: warehouse/nesting.py)."""
        self._con.autocommit = False
        try:
            yield
        except BaseException:
            self._con.rollback()
            raise
        else:
            self._con.commit()
        finally:
            self._con.autocommit = True

    def close(self) -> None:
        self._con.close()
