"""The object store: staged and exported partitions at <root>/<schema>/<table>/batch_date=YYYY-MM-DD/.

A partition is written beside its final place, then swapped in whole, with a manifest (rows,
schema, bytes, checksum) so a reader never sees half of one and a re-run replaces exactly one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dagspec.connections import ConnectionInfo

MANIFEST = "_manifest.json"
ROWS_PER_FILE = 5_000_000
ROW_GROUP_ROWS = 250_000


@dataclass(frozen=True)
class PartitionInfo:
    path: str
    rows: int
    files: list[str]
    schema: list[dict[str, str]]


class Store:
    """A local folder today; the same calls over pyarrow's S3/GCS file systems are the next step."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def from_connection(cls, info: ConnectionInfo) -> Store:
        if info.conn_type in ("fs", "file", "local"):
            path = info.extra.get("path") or info.host
            if not path:
                raise ValueError(f"store connection {info.conn_id!r} needs a folder in extra.path")
            return cls(path)
        raise ValueError(
            f"store connection {info.conn_id!r} has type {info.conn_type!r}; this version supports a local folder "
            "(conn type 'fs' with extra {\"path\": ...})"
        )

    def partition_dir(self, schema: str, table: str, batch_date: date) -> Path:
        return self.root / schema / table / f"batch_date={batch_date.isoformat()}"

    def write_partition(
        self, schema: str, table: str, batch_date: date, arrow_schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> PartitionInfo:
        final = self.partition_dir(schema, table, batch_date)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Underscore-prefixed siblings are ignored by pyarrow/DuckDB/Spark readers of the table folder.
        tmp = final.parent / f"_tmp_{final.name}_{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            files = self._write_files(tmp, arrow_schema, batches)
            manifest = {
                "batch_date": batch_date.isoformat(),
                "rows": sum(f["rows"] for f in files),
                "bytes": sum(f["bytes"] for f in files),
                "files": files,
                "schema": [{"name": f.name, "type": str(f.type)} for f in arrow_schema],
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
            _swap_in(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.partition(schema, table, batch_date)

    def _write_files(self, folder: Path, arrow_schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> list[dict]:
        files: list[dict] = []
        writer = None
        rows_in_file = 0

        def close() -> None:
            nonlocal writer
            if writer is not None:
                writer.close()
                writer = None
                path = folder / files[-1]["name"]
                files[-1].update(bytes=path.stat().st_size, sha256=_sha256(path))

        def open_next() -> None:
            nonlocal writer, rows_in_file
            name = f"part-{len(files):05d}.parquet"
            writer = pq.ParquetWriter(folder / name, arrow_schema, compression="zstd")
            files.append({"name": name, "rows": 0})
            rows_in_file = 0

        open_next()
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if rows_in_file >= ROWS_PER_FILE:
                close()
                open_next()
            writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
            rows_in_file += batch.num_rows
            files[-1]["rows"] += batch.num_rows
        close()
        return files

    def partition(self, schema: str, table: str, batch_date: date) -> PartitionInfo:
        folder = self.partition_dir(schema, table, batch_date)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no staged partition {schema}.{table} batch_date={batch_date}: did the step that writes it run?"
            ) from None
        return PartitionInfo(
            str(folder), manifest["rows"], [str(folder / f["name"]) for f in manifest["files"]], manifest["schema"]
        )

    def dataset(self, schema: str, table: str, batch_dates: Iterable[date]) -> pads.Dataset:
        parts = [self.partition(schema, table, d) for d in batch_dates]
        files = [f for p in parts for f in p.files]
        return pads.dataset(files, format="parquet")

    def batch_dates(self, schema: str, table: str) -> list[date]:
        folder = self.root / schema / table
        if not folder.is_dir():
            return []
        found = [p.name.split("=", 1)[1] for p in folder.iterdir() if p.name.startswith("batch_date=")]
        return sorted(date.fromisoformat(d) for d in found)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _swap_in(new: Path, final: Path) -> None:
    """Make `new` visible at `final` in one step; readers see the old partition or the new, never neither."""
    if not final.exists():
        os.rename(new, final)
        return
    renameat2 = getattr(_libc, "renameat2", None)
    AT_FDCWD = -100
    if renameat2 is not None and renameat2(AT_FDCWD, bytes(new), AT_FDCWD, bytes(final), _RENAME_EXCHANGE) == 0:
        shutil.rmtree(new)  # `new` now holds the old partition
        return
    # No atomic exchange (old kernel or file system): two renames, the old copy kept until the second lands.
    old = final.parent / f"_old_{final.name}_{uuid.uuid4().hex[:8]}"
    os.rename(final, old)
    os.rename(new, final)
    shutil.rmtree(old)
