"""PostgreSQL query mode: `COPY (query) TO STDOUT` read in row-aligned blocks and parsed by pyarrow.

COPY cannot take bind parameters, and the window must never be pasted into the SQL. So the values
are bound (really bound, by the server) to transaction-local settings with set_config(), and the
query's `:from_date`/`:to_date`/`:batch_date` become current_setting(...) casts. The result's
column types come from describing the query first (same transaction, LIMIT 0), so each column is
parsed into its exact Arrow type (NUMERIC(p,s) -> decimal128(p,s), timestamptz -> UTC, ...).

PostgreSQL sends one COPY message per row, so blocks of whole messages are whole rows: pyarrow
parses each block on its own and memory stays at a few blocks, however large the result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pcsv

from dagspec.connections import ConnectionInfo
from dagspec.sources.prefetch import prefetched
from dagspec.spec.model import SqlSource
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg

PREFETCH = 2
PLACEHOLDER = re.compile(r"(?<![:\w\\]):(from_date|to_date|batch_date)\b")
_CASTS = {"from_date": "timestamptz", "to_date": "timestamptz", "batch_date": "date"}

# Types whose PostgreSQL CSV text pyarrow parses exactly into the Arrow type (by type OID).
_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.int64(),
    700: pa.float32(), 701: pa.float64(), 1082: pa.date32(), 1083: pa.time64("us"),
    1114: pa.timestamp("us"), 1184: pa.timestamp("us", tz="UTC"),
    25: pa.large_string(), 1043: pa.large_string(), 1042: pa.large_string(), 19: pa.large_string(),
    2950: pa.large_string(), 114: pa.large_string(), 3802: pa.large_string(),
}
_NUMERIC, _BYTEA = 1700, 17
MAX_DECIMAL_DIGITS = 38


def rewrite(query: str) -> tuple[str, list[str]]:
    """The query with window placeholders as setting reads, and the names it uses."""
    used: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(1)
        if name not in used:
            used.append(name)
        return f"(current_setting('dagspec.{name}')::{_CASTS[name]})"

    return PLACEHOLDER.sub(sub, query.strip().rstrip(";").rstrip()), used


def arrow_types(description: Sequence[psycopg.Column]) -> list[pa.DataType] | None:
    """Exact Arrow types for a described result, or None when a column has no exact CSV reading here."""
    out = []
    for col in description:
        if col.type_code == _NUMERIC:
            if col.precision and col.precision <= MAX_DECIMAL_DIGITS:
                out.append(pa.decimal128(col.precision, col.scale or 0))
            else:
                out.append(pa.large_string())  # unconstrained or wider than decimal128: exact digits as text
        elif col.type_code == _BYTEA:
            out.append(pa.large_binary())
        elif col.type_code in _TYPES:
            out.append(_TYPES[col.type_code])
        else:
            return None
    return out


def read_batches(info: ConnectionInfo, source: SqlSource, batch: Batch, chunk_rows: int, conninfo: str
                 ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]] | None:
    """(schema, batches), or None when the result has a type this path cannot read exactly."""
    return read_query(source.query, batch, chunk_rows, conninfo)


def read_query(query: str, batch: Batch, chunk_rows: int, conninfo: str
               ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]] | None:
    import psycopg

    sql, used = rewrite(query)
    conn = psycopg.connect(conninfo)
    try:
        begin(conn)
        values = {"from_date": batch.from_at.isoformat(), "to_date": batch.to_at.isoformat(),
                  "batch_date": batch.batch_date.isoformat()}
        for name in used:
            conn.execute("SELECT set_config(%s, %s, true)", [f"dagspec.{name}", values[name]])
        cur = conn.execute(f"SELECT * FROM ({sql}) AS dagspec_query LIMIT 0")
        names = [c.name for c in cur.description]
        types = arrow_types(cur.description)
        if types is None or len(set(names)) != len(names):
            conn.close()
            return None
    except BaseException:
        conn.close()
        raise
    schema = pa.schema([pa.field(n, t) for n, t in zip(names, types)])
    return schema, stream(conn, f"COPY ({sql}) TO STDOUT (FORMAT csv)", (), schema, chunk_rows)


def begin(conn: psycopg.Connection) -> None:
    """One snapshot for everything read on `conn`, and the session settings COPY's text is parsed under."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    conn.execute("SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), "
                 "set_config('extra_float_digits', '3', true), set_config('bytea_output', 'hex', true)")


def _parse(block: bytes, schema: pa.Schema) -> pa.RecordBatch:
    read_types = {f.name: (pa.large_string() if pa.types.is_large_binary(f.type) else f.type) for f in schema}
    table = pcsv.read_csv(
        pa.BufferReader(block),
        read_options=pcsv.ReadOptions(column_names=schema.names, block_size=max(len(block) + 1, 1 << 20)),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types=read_types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
            true_values=["t"], false_values=["f"],
        ),
    )
    columns = []
    for f, col in zip(schema, table.columns):
        if pa.types.is_large_binary(f.type):  # bytea arrives as \x-prefixed hex text
            col = pa.array([None if v is None else bytes.fromhex(v[2:]) for v in col.to_pylist()], f.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema).combine_chunks().to_batches()[0]


def stream(conn: psycopg.Connection, copy_sql: str, params: Sequence[object], schema: pa.Schema, chunk_rows: int
           ) -> Iterator[pa.RecordBatch]:
    """`copy_sql`'s rows parsed into `schema`, read in a thread; `conn` closes when they are drained or dropped.
    `params` are bound by psycopg on the client (COPY takes no server-side parameters), so the planner sees
    the values, as EXPLAIN did."""
    import psycopg

    def batches() -> Iterator[pa.RecordBatch]:
        cursor = psycopg.ClientCursor(conn) if params else conn.cursor()
        with cursor.copy(copy_sql, list(params) or None) as copy:
            block, rows = bytearray(), 0
            for message in copy:  # one message = one row
                block += message
                rows += 1
                if rows >= chunk_rows:
                    yield _parse(bytes(block), schema)
                    block, rows = bytearray(), 0
            if rows:
                yield _parse(bytes(block), schema)

    # conn.cancel_safe: the caller gave up, so end the COPY on the server too.
    return prefetched(batches, depth=PREFETCH, name="dagspec-copy-reader", close=conn.close, cancel=conn.cancel_safe)
