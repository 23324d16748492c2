"""Sources: where extract reads from. Each returns (Arrow schema, iterator of record batches) for one batch.

Dispatch is by the definition's source kind and the connection's type, so a database with a
faster native path (COPY, an unbuffered cursor) gets it without the definition saying so.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.windows import Batch


def read_batches(info: ConnectionInfo, source, batch: Batch, chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    kind = getattr(source, "kind", "sql")
    if kind == "sql":
        from dagspec.sources.sqlalchemy_source import read_batches as read
    else:
        raise ValueError(f"no reader for source kind {kind!r}")
    return read(info, source, batch, chunk_rows)
