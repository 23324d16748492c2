"""Connections by id, in Airflow's format, without importing Airflow.

Inside Airflow tasks the resolver comes from `dagspec.airflow.connections` (metadata DB, secrets
backends). Elsewhere (CLI, tests) `env_resolver` reads the same `AIRFLOW_CONN_<ID>` variables Airflow
reads. Three ids have an embedded default so the demo needs no setup at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dagspec.paths import data_home
from dagspec.secrets import extra_secrets, register, scrub_known

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


@dataclass(frozen=True)
class ConnectionInfo:
    conn_id: str
    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every connection's password is hidden from every log line and error from now on (dagspec.secrets).
        register(self.password, self.login)
        for value in extra_secrets(self.extra):
            register(value)

    def scrub(self, text: str) -> str:
        """Remove every form of this connection's secret (and of any other known one) from a message: drivers
        echo DSNs, escaped or URL-encoded."""
        return scrub_known(text, [self.password])


Resolver = Callable[[str], ConnectionInfo]


class ConnectionNotFound(LookupError):
    def __init__(self, conn_id: str):
        super().__init__(
            f"connection {conn_id!r} is not defined: create it in Airflow (Admin > Connections, "
            f"`airflow connections add {conn_id} ...`) or set AIRFLOW_CONN_{conn_id.upper()}"
        )


def embedded_default(conn_id: str) -> ConnectionInfo | None:
    home = data_home()
    defaults = {
        "dagspec_source": ConnectionInfo("dagspec_source", "sqlite", host=str(home / "source.db")),
        "dagspec_warehouse": ConnectionInfo("dagspec_warehouse", "duckdb", host=str(home / "warehouse.duckdb")),
        "dagspec_store": ConnectionInfo("dagspec_store", "fs", extra={"path": str(home / "store")}),
    }
    return defaults.get(conn_id)


def env_resolver(conn_id: str) -> ConnectionInfo:
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw:
        return parse_connection(conn_id, raw)
    default = embedded_default(conn_id)
    if default is None:
        raise ConnectionNotFound(conn_id)
    return default


def parse_connection(conn_id: str, raw: str) -> ConnectionInfo:
    """Airflow's two env formats: a JSON object or a URI (scheme = conn type, query = extra)."""
    raw = raw.strip()
    if raw.startswith("{"):
        data = json.loads(raw)
        extra = data.get("extra") or {}
        return ConnectionInfo(
            conn_id,
            data.get("conn_type", ""),
            data.get("host"),
            int(data["port"]) if data.get("port") else None,
            data.get("login"),
            data.get("password"),
            data.get("schema"),
            json.loads(extra) if isinstance(extra, str) else dict(extra),
        )
    parts = urlsplit(raw)
    conn_type = parts.scheme.replace("-", "_")
    conn_type = {"postgresql": "postgres"}.get(conn_type, conn_type)
    extra: dict[str, Any] = dict(parse_qsl(parts.query))
    if "__extra__" in extra:
        extra = json.loads(extra["__extra__"])
    host = unquote(parts.hostname or "") or None
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if conn_type in ("sqlite", "duckdb") and not host:
        # sqlite:////abs/file.db: the file path travels in the URI path.
        return ConnectionInfo(conn_id, conn_type, host=path if path.startswith("/") else "/" + path, extra=extra)
    return ConnectionInfo(
        conn_id,
        conn_type,
        host,
        parts.port,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        path or None,
        extra,
    )


def database_file(info: ConnectionInfo) -> str:
    """The file of an embedded database connection (sqlite, duckdb): its host, extra `path`, or the
    path of a `duckdb:///file` URI (which Airflow keeps in schema)."""
    path = info.host or info.extra.get("path") or info.schema
    if not path:
        raise ValueError(f"connection {info.conn_id!r} ({info.conn_type}) needs the database file in host or extra 'path'")
    return os.path.expanduser(str(path))


_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mssql": "mssql+pymssql",
}


def sqlalchemy_url(info: ConnectionInfo) -> URL:
    """A SQLAlchemy URL for a SQL connection; `extra.sqlalchemy_url` is the escape hatch for anything else."""
    from sqlalchemy.engine import URL, make_url

    if info.extra.get("sqlalchemy_url"):
        url = make_url(info.extra["sqlalchemy_url"])
        return url.set(password=info.password) if info.password and url.password is None else url
    if info.conn_type == "sqlite":
        return URL.create("sqlite", database=database_file(info))
    driver = _DRIVERS.get(info.conn_type)
    if driver is None:
        raise ValueError(
            f"connection {info.conn_id!r} has type {info.conn_type!r}, which is not a SQL database dagspec knows; "
            "use postgres, mysql, sqlite or duckdb, or put a SQLAlchemy URL in the connection's extra as 'sqlalchemy_url'"
        )
    query = {k: str(v) for k, v in info.extra.items() if k in ("sslmode", "charset", "connect_timeout")}
    return URL.create(driver, info.login, info.password, info.host, info.port, info.schema, query=query)
