"""A partition's `_manifest.json`: which parts it is made of, and what they hold.

Readers go through it (never a folder listing), and its sha256 names the partition's version, so its
bytes matter: `to_bytes` writes the keys in the order every dagspec version wrote them
(batch_date, window, adopted, rows, bytes, files, schema; a sub-daily partition's batch_start
after batch_date), and a manifest read back and written again
is the same bytes. `rows` and `bytes` are the parts' sums, kept in the file for readers outside dagspec.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime

import pyarrow as pa


@dataclass(frozen=True)
class PartFile:
    """One part of a partition: its name relative to the partition, rows, size in bytes and sha256."""

    name: str
    rows: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    batch_date: date
    files: tuple[PartFile, ...]
    schema: tuple[tuple[str, str], ...]  # (column name, Arrow type as text)
    window: tuple[datetime, datetime] | None = None  # the [start, end) its rows come from
    adopted: bool = False  # written by `dagspec adopt` for files another tool wrote
    batch_start: datetime | None = None  # a sub-daily partition's start (UTC); absent from a daily one's bytes

    @classmethod
    def of(cls, batch_date: date, arrow_schema: pa.Schema, files: list[PartFile],
           window: tuple[datetime, datetime] | None = None, adopted: bool = False,
           batch_start: datetime | None = None) -> Manifest:
        return cls(batch_date, tuple(files), tuple((f.name, str(f.type)) for f in arrow_schema), window, adopted,
                   batch_start)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def columns(self) -> list[dict[str, str]]:
        return [{"name": name, "type": typ} for name, typ in self.schema]

    def to_bytes(self) -> bytes:
        record: dict[str, object] = {"batch_date": self.batch_date.isoformat()}
        if self.batch_start is not None:
            record["batch_start"] = self.batch_start.isoformat()
        if self.window:
            record["window"] = [self.window[0].isoformat(), self.window[1].isoformat()]
        if self.adopted:
            record["adopted"] = True
        record.update(rows=self.rows, bytes=self.bytes, files=[f.to_json() for f in self.files], schema=self.columns)
        return (json.dumps(record, indent=1) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        record = json.loads(data)
        window = record.get("window")
        return cls(
            date.fromisoformat(record["batch_date"]),
            tuple(PartFile(f["name"], f["rows"], f["bytes"], f.get("sha256", "")) for f in record["files"]),
            tuple((c["name"], c["type"]) for c in record["schema"]),
            (datetime.fromisoformat(window[0]), datetime.fromisoformat(window[1])) if window else None,
            bool(record.get("adopted")),
            datetime.fromisoformat(record["batch_start"]) if record.get("batch_start") else None,
        )
