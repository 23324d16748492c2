"""DuckDB as a streaming reader: a SELECT in, Arrow record batches out.

It reads other databases through its scanners (postgres, mysql) or DuckDB files attached to it.

The scanners read in parallel (PostgreSQL: ctid ranges over binary COPY in one exported snapshot)
and map column types exactly, so this is the fast path for table mode. The extensions come from
the pinned `duckdb-extension-<name>` wheels and are loaded by file path: nothing is downloaded.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pyarrow as pa

from dagspec.sources.prefetch import prefetched

# Enough for the scanners' buffers; DuckDB spills or fails rather than growing the worker past it.
MEMORY_LIMIT = os.environ.get("DAGSPEC_EXTRACT_MEMORY_LIMIT", "256MB")


@lru_cache(maxsize=None)
def extension_path(name: str) -> str:
    try:
        module = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError:
        raise RuntimeError(
            f"DuckDB extension {name!r} is not installed: pip install duckdb-extension-{name.replace('_', '-')}"
            f"=={_duckdb_version()}"
        ) from None
    found = sorted(Path(module.__path__[0]).rglob(f"{name}.duckdb_extension"))
    if not found:
        raise RuntimeError(f"the duckdb-extension-{name} wheel holds no {name}.duckdb_extension file")
    return str(found[0])


def _duckdb_version() -> str:
    import duckdb

    return duckdb.__version__


def connect(extension: str | None, settings: dict[str, object] | None = None):
    """An in-memory DuckDB with the memory limit, nothing downloaded, and `extension` (if any) loaded."""
    import duckdb

    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": MEMORY_LIMIT,
        }
    )
    try:
        con.execute("SET enable_progress_bar = false")  # it draws on stderr, i.e. into task logs
        if extension:
            con.execute(f"LOAD '{literal(extension_path(extension))}'")
        for key, value in (settings or {}).items():
            con.execute(f"SET {key} = {value!r}" if isinstance(value, str) else f"SET {key} = {value}")
    except BaseException:
        con.close()
        raise
    return con


def literal(text: str) -> str:
    """The body of a single-quoted DuckDB string literal (for ATTACH, which takes no bound parameters)."""
    return text.replace("'", "''")


def stream(
    con, sql: str, params: Sequence[object], chunk_rows: int, utc_columns: Iterable[str] = ()
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Run `sql` and stream its result; the connection closes when the iterator is drained or dropped.

    A reader thread keeps the scan going while the caller encodes Parquet (both release the GIL),
    so an extract takes about as long as the slower of the two, not their sum. The queue between
    them holds at most PREFETCH batches, which is what bounds memory. `utc_columns` are naive
    timestamps that the source holds as instants in UTC (MySQL TIMESTAMP read with time_zone +00:00).
    """
    try:
        reader = con.execute(sql, list(params)).to_arrow_reader(chunk_rows)
        schema = _normalise(reader.schema, set(utc_columns))
    except BaseException:
        con.close()
        raise
    return schema, _prefetched(con, reader, schema)


PREFETCH = 2


def _prefetched(con, reader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    def batches():
        for batch in reader:
            yield batch if batch.schema == schema else batch.cast(schema)

    def close() -> None:
        reader.close()
        con.close()

    # con.interrupt: the caller gave up (an error downstream), so stop the scan, not just the queue.
    return prefetched(batches, depth=PREFETCH, name="dagspec-extract-reader", close=close, cancel=con.interrupt)


def _normalise(schema: pa.Schema, utc_columns: set[str]) -> pa.Schema:
    """DuckDB names UTC 'Etc/UTC'; the rest of dagspec (and the SQLAlchemy path) says 'UTC'."""
    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type) and (f.type.tz in ("Etc/UTC", "UTC", "+00:00") or f.name in utc_columns):
            f = f.with_type(pa.timestamp(f.type.unit, tz="UTC"))
        fields.append(f)
    return pa.schema(fields)
