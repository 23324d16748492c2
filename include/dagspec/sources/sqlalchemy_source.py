"""Any SQLAlchemy database: reflected column types -> exact Arrow types, rows streamed with a server-side cursor.

The fallback for every SQL source; faster native paths for particular databases live beside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from dagspec.connections import ConnectionInfo, sqlalchemy_url
from dagspec.errors import StepFailed
from dagspec.sources.contract import Rows
from dagspec.spec.model import SqlSource
from dagspec.utc import MYSQL_INIT
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import date, datetime

    import psycopg
    from pymysql.protocol import FieldDescriptorPacket
    from sqlalchemy.engine import Connection, CursorResult
    from sqlalchemy.types import TypeEngine


def read_batches(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int) -> Rows:
    """(arrow schema, iterator of record batches) for one batch; the caller drains it, then it closes."""
    from sqlalchemy import create_engine

    url = sqlalchemy_url(info)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not url.database.startswith("file:") and not Path(url.database).is_file():
            # sqlite3 would create an empty file and report the table missing instead.
            raise StepFailed(f"source connection {info.conn_id!r}: SQLite file {url.database!r} does not exist")
    engine = create_engine(url)
    conn = engine.connect()
    try:
        if conn.dialect.name in ("mysql", "mariadb"):
            # TIMESTAMP values are instants: read them in UTC so they land as timestamp[us, tz=UTC].
            conn.exec_driver_sql(MYSQL_INIT)
        elif conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TimeZone = 'UTC'")
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


def _read(conn: Connection, source: SqlSource, batch: Batch, chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    from sqlalchemy import Date, DateTime, MetaData, String, Table, bindparam, literal, select, text

    if source.query is not None:
        tz_aware = conn.dialect.name == "postgresql"
        stmt = text(source.query.strip().rstrip(";"))
        bound = {}
        for name in ("from_date", "to_date"):
            if f":{name}" in source.query:
                value = batch.params()[name]
                if conn.dialect.name == "sqlite":
                    stmt = stmt.bindparams(bindparam(name, type_=String()))
                    bound[name] = _sqlite_text(value)
                    continue
                stmt = stmt.bindparams(bindparam(name, type_=DateTime(timezone=tz_aware)))
                bound[name] = value if tz_aware else value.replace(tzinfo=None)
        if ":batch_date" in source.query:
            stmt = stmt.bindparams(bindparam("batch_date", type_=Date()))
            bound["batch_date"] = batch.batch_date
        declared = {}
        if conn.dialect.name == "sqlite":  # its cursor describes no types: take the tables' declared ones
            from dagspec.sources.sqlite_types import declared_types

            declared = declared_types(conn, source.query)
            stmt = stmt.columns(**declared) if declared else stmt
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt, bound)
        types = described_types(result.cursor, len(result.keys()))
        types = [t or (arrow_type(declared[k]) if k in declared else None) for t, k in zip(types, result.keys())]
        return _stream(result, types, chunk_rows)

    try:
        table = Table(source.table, MetaData(), schema=source.schema_, autoload_with=conn)
    except Exception as exc:
        if type(exc).__name__ == "NoSuchTableError":
            where = f"{source.schema_}.{source.table}" if source.schema_ else source.table
            raise StepFailed(f"source connection {source.conn_id!r}: table {where!r} does not exist") from None
        raise
    cols = [table.c[c] for c in source.columns] if source.columns else list(table.c)
    stmt = select(*cols)
    keep = None
    if source.incremental_column:
        col = table.c[source.incremental_column]
        if conn.dialect.name == "sqlite" and isinstance(col.type, DateTime):
            # SQLite keeps DATETIME as the text it was given ('T' or ' ', offsets, no seconds, a bare date), so
            # comparing text puts such rows in the wrong batch. The SQL takes a text range one day wider on each
            # side (any offset is under a day) and each row is then placed by its parsed instant.
            low, high = (literal(m.date().isoformat(), String()) for m in
                         (batch.from_at - timedelta(days=1), batch.to_at + timedelta(days=1)))
            keep = _in_window(source.incremental_column, batch)
        else:
            low, high = _bound(col.type, batch.from_at), _bound(col.type, batch.to_at)
        stmt = stmt.where(col >= low, col < high)
    result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(stmt)
    # The wire's description is the most exact (int4 stays int32, REAL float32); reflection fills gaps.
    described = described_types(result.cursor, len(cols))
    return _stream(result, [d or arrow_type(c.type) for d, c in zip(described, cols)], chunk_rows, keep)


def _in_window(column: str, batch: Batch) -> Callable[[pa.RecordBatch], pa.RecordBatch]:
    """A filter keeping the rows whose (naive UTC) timestamp lies in [from, to) of the batch."""
    import pyarrow.compute as pc

    low, high = (m.astimezone(UTC).replace(tzinfo=None) for m in (batch.from_at, batch.to_at))

    def keep(chunk: pa.RecordBatch) -> pa.RecordBatch:
        values = chunk.column(column)
        low_s, high_s = (pa.scalar(m, type=values.type) for m in (low, high))
        return chunk.filter(pc.and_(pc.greater_equal(values, low_s), pc.less(values, high_s)))

    return keep


MAX_DECIMAL_DIGITS = 38

# PostgreSQL type OIDs (pg_type.oid, stable across versions) -> Arrow, for query mode.
_PG_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(),
    700: pa.float32(), 701: pa.float64(), 1082: pa.date32(), 1083: pa.time64("us"),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"), 17: pa.large_binary(),
    25: pa.large_string(), 1043: pa.large_string(), 1042: pa.large_string(), 19: pa.large_string(),
    2950: pa.large_string(), 114: pa.large_string(), 3802: pa.large_string(),
}
_PG_NUMERIC = 1700
# MySQL wire type codes (pymysql.constants.FIELD_TYPE).
_MY_DECIMAL = (0, 246)
_MY_TYPES: dict[int, pa.DataType] = {
    1: pa.int8(), 2: pa.int16(), 9: pa.int32(), 3: pa.int32(), 8: pa.int64(), 13: pa.int16(),
    4: pa.float32(), 5: pa.float64(), 10: pa.date32(), 12: pa.timestamp("us"), 7: pa.timestamp("us", tz="UTC"),
    245: pa.large_string(), 247: pa.large_string(), 248: pa.large_string(),
}
_MY_UNSIGNED_TYPES = {1: pa.uint8(), 2: pa.uint16(), 9: pa.uint32(), 3: pa.uint32(), 8: pa.uint64()}
_MY_BYTES = (15, 249, 250, 251, 252, 253, 254)
_MY_BINARY_CHARSET = 63
_MY_UNSIGNED = 32


def described_types(cursor: object, width: int) -> list[pa.DataType | None]:
    """Exact Arrow types of a query's result from the driver's column description; None = infer."""
    fields = getattr(getattr(cursor, "_result", None), "fields", None)
    if fields is not None:  # pymysql: the wire's field packets carry flags and charset too
        return [_mysql_type(f) for f in fields]
    description = getattr(cursor, "description", None) or []
    if description and hasattr(description[0], "type_code") and hasattr(description[0], "scale"):
        return [_pg_type(d) for d in description]
    return [None] * width


def _pg_type(column: psycopg.Column) -> pa.DataType | None:
    if column.type_code == _PG_NUMERIC:
        if column.precision and column.precision <= MAX_DECIMAL_DIGITS:
            return pa.decimal128(column.precision, column.scale or 0)
        return pa.large_string()
    return _PG_TYPES.get(column.type_code)


def _mysql_type(field: FieldDescriptorPacket) -> pa.DataType | None:
    if field.type_code in _MY_DECIMAL:
        digits = field.length - (1 if field.scale else 0) - (0 if field.flags & _MY_UNSIGNED else 1)
        if 0 < digits <= MAX_DECIMAL_DIGITS:
            return pa.decimal128(digits, field.scale)
        return pa.large_string()
    if field.flags & _MY_UNSIGNED and field.type_code in _MY_UNSIGNED_TYPES:
        return _MY_UNSIGNED_TYPES[field.type_code]
    if field.type_code in _MY_BYTES:
        return pa.large_binary() if field.charsetnr == _MY_BINARY_CHARSET else pa.large_string()
    return _MY_TYPES.get(field.type_code)


def _bound(sa_type: TypeEngine, moment: datetime) -> date | datetime:
    """The window edge in the column's own terms, so the database compares like with like."""
    from sqlalchemy import Date, DateTime

    if isinstance(sa_type, DateTime) and not sa_type.timezone:
        return moment.replace(tzinfo=None)
    if isinstance(sa_type, Date) and not isinstance(sa_type, DateTime):
        return moment.date()
    return moment


def _sqlite_text(moment: datetime) -> str:
    """A window edge as SQLite compares DATETIME: as text. Without fractional seconds when it has none,
    '2025-03-01 00:00:00' (sqlite's own format) and '2025-03-01 00:00:00.000000' (SQLAlchemy's) both
    fall on the right side of it; the microseconds SQLAlchemy would add put the first outside."""
    moment = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return moment.isoformat(sep=" ")


def arrow_type(sa_type: TypeEngine) -> pa.DataType | None:
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
        if sa_type.precision and sa_type.precision <= MAX_DECIMAL_DIGITS:
            return pa.decimal128(sa_type.precision, sa_type.scale or 0)
        # Wider than decimal128, or unconstrained (PostgreSQL NUMERIC): the exact digits, as text.
        return pa.large_string() if sa_type.asdecimal else None
    if type(sa_type).__name__ == "TIMESTAMP" and type(sa_type).__module__.startswith("sqlalchemy.dialects.mysql"):
        return pa.timestamp("us", tz="UTC")
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


def _stream(result: CursorResult, types: list[pa.DataType | None], chunk_rows: int,
            keep: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    names = list(result.keys())
    keep = keep or (lambda chunk: chunk)
    first_rows = result.fetchmany(chunk_rows)
    first = keep(_to_batch(names, first_rows, types))
    schema = first.schema

    def chunks() -> Iterator[pa.RecordBatch]:
        try:
            yield first
            while rows := result.fetchmany(chunk_rows):
                yield keep(_to_batch(names, rows, list(schema.types)))
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
            if pa.types.is_large_string(typ):
                values = [_text(v) for v in values]
            try:
                arr = pa.array(values, type=typ)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
                arr = _coerced(values, typ)
                if arr is None:
                    raise StepFailed(f"column {name!r}: values do not fit {typ}: {exc}") from None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _coerced(values: Sequence[object], typ: pa.DataType) -> pa.Array | None:
    """SQLAlchemy hands some dialects' DOUBLE as Decimal; a float column takes them as floats."""
    if pa.types.is_floating(typ):
        try:
            return pa.array([None if v is None else float(v) for v in values], type=typ)
        except (TypeError, ValueError, pa.ArrowInvalid):
            return None
    return None


def _text(value: object) -> str | None:
    """Values a text column may hold that are not str: wide decimals, UUIDs, parsed JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8")
    return str(value)
