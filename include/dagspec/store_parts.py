"""A partition's part files, one writer per format: Parquet (staged and exported) and CSV (exported).

A writer streams batches into parts in one folder under names it is given, checksumming on the way
(store_io.HashingSink, so a part is never read back) and returns what the manifest records of each.
It does not commit anything: the store decides where the folder is and when the manifest makes the
parts visible (see store.py). Names are recorded in `written` as soon as a part is opened, so after a
failure the store can delete what was written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dagspec.store_io import HashingSink, dictionary_columns
from dagspec.store_manifest import PartFile

NameOf = Callable[[int], str]  # the i-th part's file name


class PartWriter(Protocol):
    suffix: str  # the parts' file extension

    def write(self, fs: pafs.FileSystem, folder: str, name_of: NameOf, arrow_schema: pa.Schema,
              batches: Iterable[pa.RecordBatch], written: list[str]) -> list[PartFile]: ...


@runtime_checkable
class SelfWriting(Protocol):
    """Rows that may write themselves into one local Parquet file (sources.duckdb_scan.Scan): `write_parquet`
    is None when they cannot (a type whose Parquet form differs, a scan already started)."""

    @property
    def write_parquet(self) -> Callable[[str], None] | None: ...


@dataclass(frozen=True)
class ParquetParts:
    """zstd Parquet, a new part every `rows_per_file` rows; no rows still writes one part (it records the schema)."""

    rows_per_file: int
    row_group_rows: int
    suffix: str = "parquet"

    def write(self, fs: pafs.FileSystem, folder: str, name_of: NameOf, arrow_schema: pa.Schema,
              batches: Iterable[pa.RecordBatch], written: list[str]) -> list[PartFile]:
        files: list[PartFile] = []
        writer = sink = None
        name, rows_in_file = "", 0

        def close() -> None:
            nonlocal writer, sink
            if writer is not None:
                writer.close()
                sink.close()
                files.append(PartFile(name, rows_in_file, sink.size, sink.hexdigest()))
                writer = sink = None

        def open_next(dictionary: bool | list[str]) -> None:
            nonlocal writer, sink, name, rows_in_file
            name = name_of(len(files))
            written.append(name)
            sink = HashingSink(fs.open_output_stream(f"{folder}/{name}"))
            writer = pq.ParquetWriter(sink, arrow_schema, compression="zstd", use_dictionary=dictionary)
            rows_in_file = 0

        dictionary = None
        try:
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                if writer is None or rows_in_file >= self.rows_per_file:
                    close()
                    dictionary = dictionary if dictionary is not None else dictionary_columns(batch)
                    open_next(dictionary)
                writer.write_batch(batch, row_group_size=self.row_group_rows)
                rows_in_file += batch.num_rows
            if writer is None and not files:
                open_next(True)
            close()
        except BaseException:
            # Finish the file before dropping it: ParquetWriter's destructor would otherwise write its
            # footer into a closed stream. The object, if any, is an uncommitted stray.
            if writer is not None:
                try:
                    writer.close()
                except Exception:
                    pass
            if sink is not None:
                sink.discard()
            raise
        return files


@dataclass(frozen=True)
class CsvPart:
    """One CSV file with a header line, however many rows (an export is read by tools that want one file)."""

    suffix: str = "csv"

    def write(self, fs: pafs.FileSystem, folder: str, name_of: NameOf, arrow_schema: pa.Schema,
              batches: Iterable[pa.RecordBatch], written: list[str]) -> list[PartFile]:
        name = name_of(0)
        written.append(name)
        sink = HashingSink(fs.open_output_stream(f"{folder}/{name}"))
        rows = 0
        try:
            with pacsv.CSVWriter(sink, arrow_schema) as writer:
                for b in batches:
                    writer.write_batch(b)
                    rows += b.num_rows
            sink.close()
        except BaseException:
            sink.discard()
            raise
        return [PartFile(name, rows, sink.size, sink.hexdigest())]
