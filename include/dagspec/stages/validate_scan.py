"""One DuckDB connection for every staged partition a validate step checks in a run.

A run of many partitions (a chunk, a lookback) used to open, configure and close a connection per partition;
the relation each partition is checked through (`read_parquet([...])` of its committed parts) holds no state on
the connection, so one serves them all and each partition's queries, results and reports stay its own.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from typing import TYPE_CHECKING

from dagspec.utc import duckdb_utc

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection


class ScanConnection:
    def __init__(self, memory_limit: str):
        self._memory_limit = memory_limit
        self._stack = ExitStack()
        self._con: DuckDBPyConnection | None = None

    def get(self) -> DuckDBPyConnection:
        if self._con is None:
            import duckdb

            tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="dagspec-validate-"))
            self._con = duckdb_utc(duckdb.connect(config={"memory_limit": self._memory_limit, "temp_directory": tmp,
                                                          "threads": 2}))
            self._stack.callback(self._con.close)
        return self._con

    def close(self) -> None:
        self._con = None
        self._stack.close()
