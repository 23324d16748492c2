"""What a source reader is: the one contract extract relies on, whatever the source.

A reader takes the resolved connection, the definition's source (one model per kind, every one with
a `kind`), the batch window and a chunk size, and returns the Arrow schema of the rows plus an
iterator of record batches of that schema for the window. The iterator is drained by the store;
it may also be a scan that can write its whole result as one Parquet file itself (store_parts.SelfWriting).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.windows import Batch

Rows = tuple[pa.Schema, Iterator[pa.RecordBatch]]


class Source(Protocol):
    """What dispatch reads of a definition's source (spec.model's SqlSource, ObjectSource, BigQuerySource, SheetSource)."""

    @property
    def kind(self) -> str: ...

    @property
    def conn_id(self) -> str: ...


SourceT = TypeVar("SourceT", bound=Source, contravariant=True)


class Reader(Protocol[SourceT]):
    def __call__(self, info: ConnectionInfo, source: SourceT, batch: Batch, chunk_rows: int) -> Rows: ...

