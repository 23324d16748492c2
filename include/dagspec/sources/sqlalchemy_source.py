"""Any SQLAlchemy database: reflected column types -> exact Arrow types, rows streamed with a server-side cursor.

The fallback for every SQL source; faster native paths for particular databases live beside it.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from dagspec.connections import ConnectionInfo, sqlalchemy_url
from dagspec.spec.model import SqlSource
from dagspec.errors import StepFailed
from dagspec.windows import Batch


def read_batches(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int):
    """(arrow schema, iterator of record batches) for one batch; the caller drains it, then it closes."""
    from sqlalchemy import create_engine

    engine = create_engine(sqlalchemy_url(info))
    conn = engine.connect()
    try:
        schema, chunks = _read(conn, source, batch, chunk_rows)
    except BaseException:
        conn.close()
        engine.dispose()
        raise

    def drain() -> Iterator[pa.RecordBatch]:
        try:
            yield from chunks
        finally:
            conn.close()
            engine.dispose()

    return schema, drain()


def _read(conn, source: SqlSource, batch: Batch, chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from sqlalchemy import DateTime, MetaData, Table, bindparam, select, text

    if source.query is not None:
        tz_aware = conn.dialect.name == "postgresql"
        stmt = text(source.query)
        bound = {}
        for name in ("from_date", "to_date"):
            if f":{name}" in source.query:
                stmt = stmt.bindparams(bindparam(name, type_=DateTime(timezone=tz_aware)))
                value = batch.params()[name]
                bound[name] = value if tz_aware else value.replace(tzinfo=None)
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt, bound)
        return _stream(result, [None] * len(result.keys()), chunk_rows)

    try:
        table = Table(source.table, MetaData(), schema=source.schema_, autoload_with=conn)
    except Exception as exc:
        if type(exc).__name__ == "NoSuchTableError":
            where = f"{source.schema_}.{source.table}" if source.schema_ else source.table
            raise StepFailed(f"source connection {source.conn_id!r}: table {where!r} does not exist") from None
        raise
    cols = [table.c[c] for c in source.columns] if source.columns else list(table.c)
    stmt = select(*cols)
    if source.incremental_column:
        col = table.c[source.incremental_column]
        stmt = stmt.where(col >= _bound(col.type, batch.from_at), col < _bound(col.type, batch.to_at))
    result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
    return _stream(result, [arrow_type(c.type) for c in cols], chunk_rows)


def _bound(sa_type, moment):
    """The window edge in the column's own terms, so the database compares like with like."""
    from sqlalchemy import Date, DateTime

    if isinstance(sa_type, DateTime) and not sa_type.timezone:
        return moment.replace(tzinfo=None)
    if isinstance(sa_type, Date) and not isinstance(sa_type, DateTime):
        return moment.date()
    return moment


def arrow_type(sa_type) -> pa.DataType | None:
    """SQLAlchemy column type -> exact Arrow type; None means 'infer from the data'."""
    from sqlalchemy import types as t

    if isinstance(sa_type, t.Boolean):
        return pa.bool_()
    if isinstance(sa_type, t.SmallInteger):
        return pa.int16()
    if isinstance(sa_type, (t.BigInteger, t.Integer)):
        return pa.int64()
    if isinstance(sa_type, t.Float):
        return pa.float64()
    if isinstance(sa_type, t.Numeric):
        if sa_type.precision and sa_type.precision <= 38:
            return pa.decimal128(sa_type.precision, sa_type.scale or 0)
        return None
    if isinstance(sa_type, t.DateTime):
        return pa.timestamp("us", tz="UTC" if sa_type.timezone else None)
    if isinstance(sa_type, t.Date):
        return pa.date32()
    if isinstance(sa_type, t.Time):
        return pa.time64("us")
    if isinstance(sa_type, t.LargeBinary):
        return pa.large_binary()
    if isinstance(sa_type, (t.String, t.Text, t.Enum)):
        return pa.large_string()
    return None


def _stream(result, types: list[pa.DataType | None], chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    names = list(result.keys())
    first_rows = result.fetchmany(chunk_rows)
    first = _to_batch(names, first_rows, types)
    schema = first.schema

    def chunks() -> Iterator[pa.RecordBatch]:
        try:
            yield first
            while rows := result.fetchmany(chunk_rows):
                yield _to_batch(names, rows, list(schema.types))
        finally:
            result.close()

    return schema, chunks()


def _to_batch(names: list[str], rows: list, types: list[pa.DataType | None]) -> pa.RecordBatch:
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    arrays = []
    for name, values, typ in zip(names, columns, types):
        if typ is None:
            arr = pa.array(values)
            arr = arr.cast(pa.large_string()) if pa.types.is_null(arr.type) else arr
        else:
            try:
                arr = pa.array(values, type=typ)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                raise StepFailed(f"column {name!r}: values do not fit {typ}: {exc}") from None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=names)
