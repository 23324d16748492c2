"""DuckDB as a streaming reader: a SELECT in, Arrow record batches out.

It reads other databases through its scanners (postgres, mysql) or DuckDB files attached to it.

The scanners read in parallel (PostgreSQL: ctid ranges over binary COPY in one exported snapshot)
and map column types exactly, so this is the fast path for table mode. The extensions come from
the pinned `duckdb-extension-<name>` wheels and are loaded by file path: nothing is downloaded.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from dagspec.sources.prefetch import prefetched
from dagspec.utc import duckdb_utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from duckdb import DuckDBPyConnection

# Enough for the scanners' buffers; DuckDB spills or fails rather than growing the worker past it.
MEMORY_LIMIT = os.environ.get("DAGSPEC_EXTRACT_MEMORY_LIMIT", "320MB")


@cache
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


def connect(extension: str | None, settings: dict[str, object] | None = None) -> DuckDBPyConnection:
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
        duckdb_utc(con)
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
    con: DuckDBPyConnection, sql: str, params: Sequence[object], chunk_rows: int, direct: bool = False,
) -> tuple[pa.Schema, Scan]:
    """Plan `sql` and return its schema and a Scan of it; the connection closes when the Scan is drained or closed.

    `direct` lets a local store have DuckDB write the Parquet itself
    (Scan.write_parquet): only for SQL dagspec built, on a session that may write files.
    """
    reader, direct_ok = None, False
    try:
        if direct:  # bind the query (a missing column fails here) without starting the scan: COPY may run it
            planned = con.execute(f"SELECT * FROM ({sql}) LIMIT 0", list(params))
            direct_ok = all(_DIRECT_TYPES.fullmatch(str(d[1])) for d in planned.description)
            probe = planned.to_arrow_table().schema
        else:
            reader = con.execute(sql, list(params)).to_arrow_reader(chunk_rows)
            probe = reader.schema
        schema = _normalise(probe)
    except BaseException:
        con.close()
        raise
    return schema, Scan(con, sql, params, chunk_rows, schema, reader, direct_ok)


PREFETCH = 2
# DuckDB column types whose Parquet form reads back as exactly the Arrow type the streamed path writes.
# Others differ (UUID is text in Arrow but 16 bytes in Parquet; HUGEINT, INTERVAL, ENUM, nested types) and
# stream through Arrow instead.
_DIRECT_TYPES = re.compile(r"BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|FLOAT|DOUBLE|DECIMAL\(\d+,\d+\)|VARCHAR|BLOB|DATE"
                           r"|TIMESTAMP|TIMESTAMP WITH TIME ZONE")


class Scan:
    """One query's result, read once, one of two ways.

    Iterated, it streams Arrow record batches: a reader thread keeps the scan going while the caller
    encodes Parquet (both release the GIL), so an extract takes about as long as the slower of the two,
    not their sum; the queue between them holds at most PREFETCH batches, which bounds memory.

    Or `write_parquet` (when not None) has DuckDB write the result to one local Parquet file itself
    (COPY ... TO): no Arrow conversion, and the Parquet encoding runs on all of DuckDB's threads. Through
    Arrow, pyarrow's single-threaded writer is the bottleneck: on TPC-H lineitem SF1 it was busy 6.7-7.0 s
    of an 8-9 s extract. On this 2-core machine both ways take about as long (the cores are saturated
    either way) and DuckDB's uses ~30 MB less; on a bigger worker only DuckDB's scales. With
    preserve_insertion_order (the default) the file keeps the scan's order, so a single-stream source
    re-writes the same bytes. It is offered only when every column's type reads back from DuckDB's
    Parquet exactly as the Arrow path would write it.
    """

    def __init__(self, con: DuckDBPyConnection, sql: str, params: Sequence[object], chunk_rows: int, schema: pa.Schema,
                 reader: pa.RecordBatchReader | None = None,
                 direct: bool = False):
        """`reader`: the query already running as a stream (then not `direct`). `direct`: DuckDB may write the
        Parquet itself."""
        self._con, self._sql, self._params, self._chunk_rows = con, sql, list(params), chunk_rows
        self.schema = schema
        self._batches = None if reader is None else _prefetched(con, reader, schema)
        self._direct = direct

    def __iter__(self) -> Scan:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._batches is None:
            try:
                reader = self._con.execute(self._sql, self._params).to_arrow_reader(self._chunk_rows)
            except BaseException:
                self._con.close()
                raise
            self._batches = _prefetched(self._con, reader, self.schema)
        return next(self._batches)

    def close(self) -> None:
        if self._batches is not None:
            self._batches.close()
        else:
            self._con.close()

    @property
    def write_parquet(self) -> Callable[[str], None] | None:
        return self._copy if self._direct and self._batches is None else None

    def _copy(self, path: str) -> None:
        """The whole result into the local Parquet file `path`. DuckDB runs it in a thread so that the
        caller's thread stays free to take signals (a task being stopped): it interrupts the COPY and
        re-raises."""
        # DuckDB's own row group size (122,880 rows): asking for larger ones measured slower and ~100 MB bigger.
        sql = f"COPY ({self._sql}) TO '{literal(path)}' (FORMAT parquet, COMPRESSION zstd)"
        done: list[BaseException | None] = []

        def run() -> None:
            try:
                self._con.execute(sql, self._params)
                done.append(None)
            except BaseException as exc:  # handed to the caller's thread
                done.append(exc)

        worker = threading.Thread(target=run, name="dagspec-extract-copy", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except BaseException:
            self._con.interrupt()
            worker.join()
            raise
        finally:
            self._con.close()
        if done and done[0] is not None:
            raise done[0]


def _prefetched(con: DuckDBPyConnection, reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            yield batch if batch.schema == schema else batch.cast(schema)

    def close() -> None:
        reader.close()
        con.close()

    # con.interrupt: the caller gave up (an error downstream), so stop the scan, not just the queue.
    return prefetched(batches, depth=PREFETCH, name="dagspec-extract-reader", close=close, cancel=con.interrupt)


def _normalise(schema: pa.Schema) -> pa.Schema:
    """DuckDB names UTC 'Etc/UTC'; the rest of dagspec (and the SQLAlchemy path) says 'UTC'."""
    fields = []
    for f in schema:
        if pa.types.is_timestamp(f.type) and f.type.tz in ("Etc/UTC", "UTC", "+00:00"):
            f = f.with_type(pa.timestamp(f.type.unit, tz="UTC"))
        fields.append(f)
    return pa.schema(fields)
