"""A warehouse many processes share: DuckLake, its catalog in SQLite (one machine) or PostgreSQL (several),
its tables as Parquet files under a data path (a local folder, or s3:// / gs:// with the httpfs wheel).

Each session is an in-memory DuckDB that attaches the lake and makes it the default database, so every SQL
path of the DuckDB file warehouse runs unchanged (DuckDBSession is reused whole); readers see the last
committed snapshot and never wait for writers. Two writers' commits can still collide in the catalog:
PostgreSQL resolves it (DuckLake retries the snapshot itself); SQLite answers "database is locked" to one of
them. A collided write is then run again as a whole, with backoff, a bounded number of times, each retry
logged; it is safe because every write (replace, merge, table, view) is one transaction that replaces its
batch, and Arrow streams are copied into the session first so that a second attempt reads the same rows.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.sources.duckdb_scan import extension_path, literal
from dagspec.sql import quote
from dagspec.utc import duckdb_utc
from dagspec.warehouse.batch_columns import daily_only
from dagspec.warehouse.contract import ArrowSource
from dagspec.warehouse.duckdb import DuckDBSession

log = logging.getLogger(__name__)
T = TypeVar("T")

LAKE = "lake"  # the attached catalog's name inside each session
CATALOG_SCANNERS = {"sqlite": "sqlite_scanner", "postgres": "postgres_scanner"}
# A commit that lost to another writer: SQLite's lock, DuckLake's own conflict check, PostgreSQL's serialisation.
CONFLICTS = ("database is locked", "database table is locked", "transaction conflict",
             "failed to flush changes", "could not serialize", "duplicate key value",
             # DuckLake 1.5.5 on two first writers creating one schema or table: the loser's commit fails to
             # re-load ("table ... references schema id ... that does not exist", "... does not have any
             # columns"); nothing of it was committed, and the retry finds the winner's schema and table
             "failed to load ducklake")
COMMIT_ATTEMPTS = int(os.environ.get("DAGSPEC_DUCKLAKE_ATTEMPTS", "8"))
FIRST_DELAY_S, MAX_DELAY_S = 0.1, 5.0
_INSTANCES: dict[tuple, Any] = {}
_INSTANCES_LOCK = threading.Lock()


class WarehouseConflict(RuntimeError):
    """A write kept colliding with other writers' commits past the bounded retries."""


def lake_settings(info: ConnectionInfo) -> tuple[str, str, str, str | None]:
    """(catalog kind, the catalog text after `ducklake:`, data path, metadata schema) from a `ducklake`
    connection: extra `catalog` is `sqlite:/abs/catalog.sqlite` or `postgres:dbname=... host=... user=...`
    (the connection's password, when set, is added to the libpq string, so it is masked like any other),
    extra `data_path` the folder or s3:// / gs:// prefix of the Parquet files."""
    catalog = str(info.extra.get("catalog") or info.host or "")
    kind, _, target = catalog.partition(":")
    kind = {"postgresql": "postgres", "sqlite3": "sqlite"}.get(kind, kind)
    if kind not in CATALOG_SCANNERS or not target:
        raise ValueError(f"warehouse connection {info.conn_id!r} (ducklake) needs extra.catalog "
                         "'sqlite:/path/catalog.sqlite' or 'postgres:dbname=... host=... user=...'")
    if kind == "sqlite":
        target = os.path.expanduser(target.removeprefix("//"))
    elif info.password and "password=" not in target:
        target = f"{target} password={info.password}"
    data_path = str(info.extra.get("data_path") or "")
    if not data_path:
        if kind != "sqlite":
            raise ValueError(f"warehouse connection {info.conn_id!r} (ducklake) needs extra.data_path: the "
                             "folder (or s3:// / gs:// prefix) every worker reaches for the Parquet files")
        data_path = f"{target}.files"
    if "://" not in data_path:
        data_path = os.path.abspath(os.path.expanduser(data_path))
    return kind, f"{kind}:{target}", data_path.rstrip("/") + "/", info.extra.get("metadata_schema")


class DuckLakeWarehouse:
    dialect = "duckdb"

    def __init__(self, info: ConnectionInfo):
        self.info = info
        self.kind, self.catalog, self.data_path, self.metadata_schema = lake_settings(info)

    def __repr__(self) -> str:
        return f"DuckLakeWarehouse({self.info.conn_id!r}, {self.kind} catalog, data {self.data_path})"

    @contextmanager
    def session(self) -> Iterator[DuckLakeSession]:
        """A connection of this process's DuckDB instance that has the lake attached: loading the DuckLake
        and scanner extensions takes ~0.35 s, so each process does it once (a forked child opens its own)."""
        con = self._instance().cursor()
        try:
            con.execute(f"USE {LAKE}")
            duckdb_utc(con)
            yield DuckLakeSession(con, self.info.scrub)
        finally:
            con.close()

    def _instance(self) -> Any:
        key = (os.getpid(), self.catalog, self.data_path, self.metadata_schema)
        with _INSTANCES_LOCK:
            found = _INSTANCES.get(key)
            if found is None:
                found = _INSTANCES[key] = self._attach()
            return found

    def _attach(self) -> Any:
        import duckdb

        scratch = tempfile.mkdtemp(prefix="dagspec-ducklake-")
        owner = os.getpid()  # a forked child inherits the atexit hook: only this process removes its scratch
        atexit.register(lambda: os.getpid() == owner and shutil.rmtree(scratch, ignore_errors=True))
        con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                     "temp_directory": scratch})
        try:
            con.execute("SET enable_progress_bar = false")
            for extension in ("ducklake", CATALOG_SCANNERS[self.kind], *self._remote_extensions()):
                con.execute(f"LOAD '{literal(extension_path(extension))}'")
            self._remote_secret(con)
            if self.kind == "sqlite":
                sqlite_wal(Path(self.catalog.partition(":")[2]))
            if "://" not in self.data_path:
                Path(self.data_path).mkdir(parents=True, exist_ok=True)
            options = [f"DATA_PATH '{literal(self.data_path)}'"]
            if self.metadata_schema:
                options.append(f"METADATA_SCHEMA '{literal(str(self.metadata_schema))}'")
            attach = f"ATTACH 'ducklake:{literal(self.catalog)}' AS {LAKE} ({', '.join(options)})"
            try:
                # Attaching a new catalog creates its tables: two first sessions at once collide like two commits.
                # (PostgreSQL: 'relation "ducklake_metadata" already exists', under "Failed to initialize")
                retried(lambda: con.execute(attach), f"attach {self.kind} catalog", self.info.scrub,
                        also=("failed to initialize ducklake",))
            except duckdb.Error as exc:  # the libpq string (and its password) is echoed in the error
                raise type(exc)(f"warehouse connection {self.info.conn_id!r}: {self.info.scrub(str(exc))}") from None
        except BaseException:
            con.close()
            raise
        return con

    def _remote_extensions(self) -> tuple[str, ...]:
        return ("httpfs",) if self.data_path.startswith(("s3://", "gs://", "gcs://")) else ()

    def _remote_secret(self, con: Any) -> None:
        """S3/GCS credentials from the connection (login/password = key id/secret, extra endpoint_url,
        region_name); none given, DuckDB's own environment lookup applies."""
        if not self._remote_extensions() or not self.info.login:
            return
        kind = "gcs" if self.data_path.startswith(("gs://", "gcs://")) else "s3"
        parts = [f"TYPE {kind}", f"KEY_ID '{literal(self.info.login)}'",
                 f"SECRET '{literal(self.info.password or '')}'"]
        endpoint = self.info.extra.get("endpoint_url")
        if endpoint:
            secure = str(endpoint).startswith("https://")
            host = str(endpoint).split("://", 1)[-1].rstrip("/")
            parts += [f"ENDPOINT '{literal(host)}'", "URL_STYLE 'path'", f"USE_SSL {str(secure).lower()}"]
        if self.info.extra.get("region_name"):
            parts.append(f"REGION '{literal(str(self.info.extra['region_name']))}'")
        con.execute(f"CREATE OR REPLACE TEMPORARY SECRET dagspec_lake ({', '.join(parts)})")


class DuckLakeSession(DuckDBSession):
    """DuckDB's session over the attached lake; every write is retried whole when its commit collides."""

    loads_chunks = False  # daily batches only, each write retried on its own

    def __init__(self, con: Any, scrub: Callable[[str], str] = str):
        super().__init__(con)
        self.scrub = scrub

    def expose(self, name: str, relation: ArrowSource) -> str:
        """A stream is read once: copy it into a session temp table (spilled to the scratch folder past
        memory), so that a retried write reads the same rows again. Datasets and tables re-scan as they are."""
        if isinstance(relation, pa.RecordBatchReader):
            staged = f"_dagspec_stream_{name}"
            self.con.register(staged, relation)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name, self.dialect)} AS SELECT * FROM "
                             f"{quote(staged, self.dialect)}")
            self.con.unregister(staged)
            return quote(name, self.dialect)
        return super().expose(name, relation)

    def ensure_schema(self, schema: str) -> None:
        """The schema in a commit of its own first: two first writers creating it inside their writes collide
        in a way DuckLake cannot merge ("table ... references schema id ... that does not exist")."""
        retried(lambda: self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, self.dialect)}"),
                f"create schema {schema}", self.scrub)

    def replace_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                      keep: int | None = None, after: Sequence[str] = ()) -> int:
        batch_date = daily_only(batch_date, "DuckLake")
        self.ensure_schema(schema)
        return retried(lambda: super(DuckLakeSession, self).replace_batch(schema, table, batch_date, select_sql,
                                                                          params, keep, after),
                       f"replace {schema}.{table} batch {batch_date}", self.scrub)

    def merge_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                    key: list[str]) -> int:
        batch_date = daily_only(batch_date, "DuckLake")
        self.ensure_schema(schema)
        return retried(lambda: super(DuckLakeSession, self).merge_batch(schema, table, batch_date, select_sql,
                                                                        params, key),
                       f"merge into {schema}.{table} batch {batch_date}", self.scrub)

    def replace_table(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any]) -> int:
        batch_date = daily_only(batch_date, "DuckLake")
        self.ensure_schema(schema)
        return retried(lambda: super(DuckLakeSession, self).replace_table(schema, table, batch_date, select_sql,
                                                                          params),
                       f"replace table {schema}.{table}", self.scrub)

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        self.ensure_schema(schema)
        retried(lambda: super(DuckLakeSession, self).create_view(schema, table, select_sql),
                f"create view {schema}.{table}", self.scrub)


def sqlite_wal(path: Path) -> None:
    """Put the SQLite catalog in WAL mode (kept in the file): readers then never wait for a writer, and a
    commit that loses fails at once instead of sleeping in SQLite's busy handler (1 s steps here)."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(path, timeout=5)
        try:
            if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                con.execute("PRAGMA journal_mode = WAL")
        finally:
            con.close()
    except sqlite3.OperationalError as exc:  # busy: another process has it open, and set it before us
        log.debug("SQLite catalog %s: journal mode not changed: %s", path, exc)


def is_conflict(exc: BaseException, also: tuple[str, ...] = ()) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in (*CONFLICTS, *also))


def retried(write: Callable[[], T], what: str, scrub: Callable[[str], str] = str,
            attempts: int | None = None, sleep: Callable[[float], None] = time.sleep, also: tuple[str, ...] = ()) -> T:
    """Run `write` (one whole transaction) again while its commit collides with another writer's: at most
    `attempts` times, waiting 0.1 s doubling to 5 s with jitter, each retry logged; other errors at once.
    `also`: more messages that count as a collision for this write only."""
    import duckdb

    attempts = attempts or COMMIT_ATTEMPTS
    delay = FIRST_DELAY_S
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except duckdb.Error as exc:
            if not is_conflict(exc, also):
                raise
            message = " / ".join(line.strip() for line in scrub(str(exc)).splitlines() if line.strip())
            if attempt == attempts:
                raise WarehouseConflict(
                    f"{what}: the DuckLake catalog stayed busy with other writers through {attempts} attempts "
                    f"({message}). A SQLite catalog takes one commit at a time: use a PostgreSQL catalog for "
                    "many concurrent writers, or raise DAGSPEC_DUCKLAKE_ATTEMPTS") from None
            wait = min(delay, MAX_DELAY_S) * (0.5 + random.random())
            log.warning("%s: commit collided with another writer (%s); attempt %d of %d in %.2fs",
                        what, message, attempt + 1, attempts, wait)
            sleep(wait)
            delay *= 2
    raise AssertionError("unreachable")

