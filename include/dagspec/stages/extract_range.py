"""Range-native extract: one source query per chunk of `batch_size` partitions, split into its partitions as
they are written.

A SQL table read by its incremental column is read once for the chunk's whole [from, to) and each row goes to
the partition whose window holds its value; each partition is then written (and committed) on its own, from its
rows re-cut into `chunk_rows` record batches: the stream a one-partition read yields, so the Parquet parts (row
groups included) and manifests are byte for byte those of running the dates one by one. Anything else falls back
to one read per partition: query mode (the query's own SQL decides what a window holds), streams the scanner
writes itself (PostgreSQL, DuckDB files: their writer, not ours, cuts row groups), and a column that is not a
date or timestamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dagspec.sources import read_batches
from dagspec.spec.model import ExtractStep
from dagspec.store_parts import SelfWriting
from dagspec.windows import Batch, utc

if TYPE_CHECKING:
    import pyarrow as pa

    from dagspec.connections import ConnectionInfo


def chunks_of(batches: list[Batch], size: int) -> Iterator[list[Batch]]:
    """Runs of at most `size` batches that follow one another without a hole (a lookback's gaps may leave some)."""
    run: list[Batch] = []
    for batch in batches:
        if run and (len(run) >= size or run[-1].to_at != batch.from_at):
            yield run
            run = []
        run.append(batch)
    if run:
        yield run


def splittable(step: ExtractStep, chunk: list[Batch]) -> bool:
    source = step.source
    return (len(chunk) > 1 and source.kind == "sql" and bool(source.incremental_column)
            and getattr(source, "query", None) is None)


def read_chunk(info: ConnectionInfo, step: ExtractStep, chunk: list[Batch]
               ) -> tuple[pa.Schema, dict[Batch, pa.Table]] | None:
    """Each batch's rows out of one read of the chunk's range, or None when the read cannot be split (the
    caller reads per batch; nothing has been written)."""
    import pyarrow as pa

    span = Batch(chunk[0].batch_date, chunk[0].from_at, chunk[-1].to_at)
    schema, stream = read_batches(info, step.source, span, step.chunk_rows)
    column = step.source.incremental_column
    if isinstance(stream, SelfWriting) or column not in schema.names or not _orderable(schema.field(column).type):
        _close(stream)
        return None
    table = pa.Table.from_batches(list(stream), schema)
    parts = {b: _rows_in(table, column, b) for b in chunk}
    if sum(t.num_rows for t in parts.values()) != table.num_rows:  # a value no batch window holds: do not guess
        return None
    return schema, parts


def record_batches(rows: pa.Table, chunk_rows: int) -> list[pa.RecordBatch]:
    """The partition's rows as a one-partition read streams them: `chunk_rows` at a time."""
    return rows.combine_chunks().to_batches(max_chunksize=chunk_rows)


def _orderable(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_timestamp(typ) or pa.types.is_date(typ)


def _rows_in(table: pa.Table, column: str, batch: Batch) -> pa.Table:
    """The rows whose value lies in [from, to) of the batch, compared as the one-partition read compares them:
    naive timestamps as UTC wall time, dates against the bounds' UTC dates."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(column)
    typ = values.type
    low, high = utc(batch.from_at), utc(batch.to_at)
    if pa.types.is_date(typ):
        bounds = (low.date(), high.date())
    elif typ.tz is None:
        bounds = (low.replace(tzinfo=None), high.replace(tzinfo=None))
    else:
        bounds = (low, high)
    lo, hi = (pa.scalar(v, type=typ) for v in bounds)
    return table.filter(pc.and_(pc.greater_equal(values, lo), pc.less(values, hi)))


@runtime_checkable
class Closing(Protocol):
    def close(self) -> None: ...


def _close(stream: object) -> None:
    """Release a read that will not be drained (its connection, its scan)."""
    if isinstance(stream, Closing):
        stream.close()
