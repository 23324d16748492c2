"""PostgreSQL table mode, a small window (the common run: one day of a big table) on one psycopg connection.

Loading DuckDB's postgres scanner, attaching and its own catalog reads cost more than reading a day of
rows: measured on TPC-H lineitem SF1 (2,427 rows, bench/window_bench.py) the scanner's one COPY was most
of a 0.4 s extract step. So when PostgreSQL's planner would read the window through an index and expects
few rows, the rows come through psycopg's COPY instead (postgres_copy.py parses its text into exact Arrow
types), on the one connection that also read the catalog and the plan, in one snapshot.

The partition must not depend on which path read it: the Arrow types are the ones the scanner's rows
have (string, not large_string), batches are `chunk_rows` long like the scanner's, and a window planned
as one query is written by pyarrow on both paths (postgres.read_batches), so the files are byte for byte
the same. DuckDB's own Parquet writer is not used here: it would need these batches registered with
DuckDB, which imports pandas (more than the whole read of a day costs). Only column types checked to
match are read here (SMALL_TYPES); a table with any other column keeps the scanner.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from dagspec.sources import postgres_copy

if TYPE_CHECKING:
    import psycopg

# Column types (pg_type.typname) whose COPY text parses to exactly the values and Arrow type the scanner reads
# (tests/integration/test_source_window_plan.py compares the files). bytea, json, uuid, time, interval,
# arrays, ... are read by the scanner.
SMALL_TYPES = frozenset({"int2", "int4", "int8", "numeric", "bpchar", "varchar", "text", "date", "timestamp",
                         "timestamptz", "bool", "float8"})


def read(conn: psycopg.Connection, relation: str, columns: Sequence[str], where: str, edges: Sequence[object],
         chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]] | None:
    """The window's rows in batches of `chunk_rows`, or None when a column's type is not one this path reads
    exactly. `relation`, `columns` and `where` are quoted SQL dagspec built; the edges are bound. Takes `conn`
    over: the batches close it (None: the caller still owns it)."""
    select = f"SELECT {', '.join(columns)} FROM {relation}"
    described = conn.execute(f"{select} LIMIT 0").description
    types = postgres_copy.arrow_types(described)
    if types is None:
        return None
    # The scanner's rows are string; large_string would be another Arrow (and Parquet footer) type.
    schema = pa.schema([pa.field(c.name, pa.string() if t == pa.large_string() else t) for c, t in zip(described, types)])
    copy_sql = f"COPY ({select} WHERE {where}) TO STDOUT (FORMAT csv)"
    return schema, postgres_copy.stream(conn, copy_sql, edges, schema, chunk_rows)
