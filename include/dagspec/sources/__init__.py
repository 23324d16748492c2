"""Sources: where extract reads from. Each returns (Arrow schema, iterator of record batches) for one batch.

Dispatch is by the definition's source kind and the connection's type, so a database with a
faster native path (a parallel binary COPY, an unbuffered cursor) gets it without the definition
saying so. A connection that names its own SQLAlchemy URL (extra `sqlalchemy_url`) keeps the
generic path, which works for any database SQLAlchemy knows.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.windows import Batch

_SQL_READERS = {
    "postgres": "dagspec.sources.postgres",
    "postgresql": "dagspec.sources.postgres",
    "mysql": "dagspec.sources.mysql",
    "mariadb": "dagspec.sources.mysql",
    "duckdb": "dagspec.sources.duckdb_source",
}


def read_batches(info: ConnectionInfo, source, batch: Batch, chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    kind = getattr(source, "kind", "sql")
    if kind == "objects":
        from dagspec.sources.objects import read_batches as read_objects

        return read_objects(info, source, batch, chunk_rows)
    if kind == "bigquery":
        from dagspec.sources.bigquery import read_batches as read_bigquery

        return read_bigquery(info, source, batch, chunk_rows)
    if kind != "sql":
        raise ValueError(f"no reader for source kind {kind!r}")
    module = "dagspec.sources.sqlalchemy_source"
    if not info.extra.get("sqlalchemy_url"):
        module = _SQL_READERS.get(info.conn_type, module)
    import importlib

    return importlib.import_module(module).read_batches(info, source, batch, chunk_rows)
