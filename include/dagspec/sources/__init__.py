"""Sources: where extract reads from. Each reader returns the rows of one batch (contract.Reader).

Dispatch is by the definition's source kind and the connection's type, so a database with a
faster native path (a parallel binary COPY, an unbuffered cursor) gets it without the definition
saying so. A connection that names its own SQLAlchemy URL (extra `sqlalchemy_url`) keeps the
generic path, which works for any database SQLAlchemy knows. Readers are imported when chosen:
each pulls in its own driver (DuckDB, PyMySQL, the BigQuery client), which other runs never need.
"""

from __future__ import annotations

from collections.abc import Callable

from dagspec.connections import ConnectionInfo
from dagspec.sources.contract import Reader, Rows
from dagspec.spec.model import BigQuerySource, ObjectSource, SheetSource, SqlSource
from dagspec.windows import Batch

AnySource = SqlSource | ObjectSource | BigQuerySource | SheetSource


def _postgres() -> Reader[SqlSource]:
    from dagspec.sources.postgres import read_batches

    return read_batches


def _mysql() -> Reader[SqlSource]:
    from dagspec.sources.mysql import read_batches

    return read_batches


def _duckdb() -> Reader[SqlSource]:
    from dagspec.sources.duckdb_source import read_batches

    return read_batches


def _sqlalchemy() -> Reader[SqlSource]:
    from dagspec.sources.sqlalchemy_source import read_batches

    return read_batches


def _objects() -> Reader[ObjectSource]:
    from dagspec.sources.objects import read_batches

    return read_batches


def _bigquery() -> Reader[BigQuerySource]:
    from dagspec.sources.bigquery import read_batches

    return read_batches


def _sheet() -> Reader[SheetSource]:
    from dagspec.sources.sheet import read_batches

    return read_batches


# (source kind, connection type) -> the reader; a kind's entry under None serves every other connection type.
READERS: dict[tuple[str, str | None], Callable[[], Reader]] = {
    ("sql", "postgres"): _postgres,
    ("sql", "postgresql"): _postgres,
    ("sql", "mysql"): _mysql,
    ("sql", "mariadb"): _mysql,
    ("sql", "duckdb"): _duckdb,
    ("sql", None): _sqlalchemy,
    ("objects", None): _objects,
    ("bigquery", None): _bigquery,
    ("sheet", None): _sheet,
}


def reader_for(kind: str, info: ConnectionInfo) -> Reader:
    if kind == "sql" and info.extra.get("sqlalchemy_url"):
        return _sqlalchemy()
    load = READERS.get((kind, info.conn_type)) or READERS.get((kind, None))
    if load is None:
        raise ValueError(f"no reader for source kind {kind!r}")
    return load()


def read_batches(info: ConnectionInfo, source: AnySource, batch: Batch, chunk_rows: int) -> Rows:
    return reader_for(source.kind, info)(info, source, batch, chunk_rows)
