"""The object store: staged and exported partitions at <root>/<schema>/<table>/batch_date=YYYY-MM-DD/
(and, for a sub-daily pipeline, one level down at .../batch_time=HHMM/: see dagspec.partitions).

One interface over a local folder, S3 and GCS (pyarrow's file systems). Every partition has a
`_manifest.json` (rows, schema, bytes and sha256 of each part) and readers go through it, so a
reader never sees half of a partition and a re-run replaces exactly one. A partition's parts are
Parquet (staged data, most exports) or one CSV or Excel file (exports for tools that want those: `fmt="csv"`, `"xlsx"`);
every format is committed the same way, below, and only the parts' writer differs (store_parts, store_xlsx).

How a partition is committed depends on what the file system can do atomically:

* Local folder: the partition is written in a folder under `<store>/_tmp/` (the same file system,
  outside every table's folder, so a killed writer's half file never matches a reader's
  `<table>/**/*.parquet` glob), fsynced, and swapped in whole with renameat2(RENAME_EXCHANGE),
  so even tools that list the folder themselves see the old partition or the new one, never
  neither and never a mix. The folders on both sides are fsynced after (store_io).
* S3 and GCS have no rename (a "move" is copy + delete, object by object), but replacing one
  object is atomic. So parts are written straight to the partition's prefix under names unique
  to the run (`part-<run>-00000.parquet` or `.csv`) that no committed manifest mentions, then
  `_manifest.json` is overwritten in one PUT: that single write is the commit point. A crash
  before it leaves the old manifest naming the old, untouched parts: the old partition stays
  whole and visible, the new parts are invisible strays. After the commit the parts of the
  replaced manifest are deleted; strays are deleted once they are older than `stray_grace`
  (a crashed run's leftovers), never sooner, because a younger stray may be a concurrent
  writer's part in flight. Copy-then-commit was rejected: it moves every byte twice.
  Only objects dagspec wrote itself are ever deleted (store_owned.is_ours): the foreign files of an
  adopted partition (see store_adopt) stay in place through a re-run, unlisted by the new manifest,
  and so does any name dagspec never writes; locally the swap carries them into the new folder.
  Consequence: read a partition through its manifest (Store.partition / Store.dataset), not by
  globbing `part-*.parquet`; a reader holding the previous manifest while a re-run of the same
  date commits may find its files gone and must re-read the manifest.

A manifest's sha256 (Store.partition(...).digest) names one version of a partition: validate
records the version it checked under `<store>/_checks/` and later readers pass it back to
Store.dataset, which refuses any other version. `<store>/_runs/` holds how runs outside Airflow
went. `_tmp`, `_checks` and `_runs` are therefore not schema names.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs

from dagspec.connections import ConnectionInfo
from dagspec.filesystems import Location, location
from dagspec.partitions import Key, PartitionKey, as_key
from dagspec.store_adopt import StoreAdopt
from dagspec.store_io import delete_quietly, make_dirs, swap_in, written_by
from dagspec.store_manifest import Manifest
from dagspec.store_owned import MANIFEST, is_ours
from dagspec.store_parts import CsvPart, ParquetParts, PartWriter, SelfWriting
from dagspec.store_records import CHECKS, RUNS, TEMP, PartitionChanged, StoreRecords

if TYPE_CHECKING:
    import pyarrow.dataset as pads

ROWS_PER_FILE = 5_000_000
ROW_GROUP_ROWS = 250_000
STRAY_GRACE = timedelta(hours=6)
_PARTITION = re.compile(r"batch_date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class PartitionInfo:
    path: str
    rows: int
    files: list[str]
    schema: list[dict[str, str]]
    digest: str = ""  # sha256 of the manifest: this version of the partition


class Store(StoreRecords, StoreAdopt):
    """Partitions under a root: a local folder (`Store("/data/store")`) or a bucket prefix
    (`Store("s3://bucket/prefix", filesystem=...)`, usually built by `Store.from_connection`)."""

    def __init__(self, root: str | Path | Location, filesystem: pafs.FileSystem | None = None,
                 stray_grace: timedelta = STRAY_GRACE):
        if isinstance(root, Location):
            loc = root
        elif filesystem is not None:
            path = str(root)
            loc = Location(filesystem, path.split("://", 1)[1] if "://" in path else path)
        elif isinstance(root, str) and "://" in root:
            fs, path = pafs.FileSystem.from_uri(root)
            loc = Location(fs, path)
        else:
            loc = Location(pafs.LocalFileSystem(), str(Path(root).expanduser().absolute()))
        self.location = Location(loc.fs, loc.path.rstrip("/") or "/")
        self.fs = loc.fs
        self.local = isinstance(loc.fs, pafs.LocalFileSystem)
        self.stray_grace = stray_grace
        self.held: list[Path] = []  # hard links of pinned partitions being read (see dataset)

    @property
    def root(self) -> Path | str:
        return Path(self.location.path) if self.local else self.location.uri()

    @classmethod
    def from_connection(cls, info: ConnectionInfo) -> Store:
        """fs/file: extra.path is a folder. aws: extra.path 's3://bucket/prefix' (+ endpoint_url, region_name;
        login/password are the access key and secret). google_cloud_platform: extra.path 'gs://bucket/prefix'
        (+ endpoint for an emulator)."""
        return cls(location(info))

    # -- paths -------------------------------------------------------------------------------------
    def _table_path(self, schema: str, table: str) -> str:
        for part in (schema, table):
            if not part or "/" in part or part in (".", ".."):
                raise ValueError(f"{part!r} cannot name a folder in the store")
        if schema in (TEMP, CHECKS, RUNS):
            raise ValueError(f"schema {schema!r} is the store's own folder; give the table another schema")
        return f"{self.location.path}/{schema}/{table}"

    def _own_path(self, kind: str, *names: str) -> str:
        for name in names:
            self._table_path("x", name)  # the same name checks as a table's folder
        return "/".join([self.location.path, kind, *names])

    def _partition_path(self, schema: str, table: str, batch_date: Key) -> str:
        return f"{self._table_path(schema, table)}/{as_key(batch_date).segment}"

    def partition_dir(self, schema: str, table: str, batch_date: Key) -> Path | str:
        """Where a partition lives: a Path for a local store, an s3:// or gs:// URI otherwise."""
        path = self._partition_path(schema, table, batch_date)
        return Path(path) if self.local else self.location.uri(path)

    # -- writing -----------------------------------------------------------------------------------
    def write_partition(
        self, schema: str, table: str, batch_date: Key, arrow_schema: pa.Schema, batches: Iterable[pa.RecordBatch],
        window: tuple[datetime, datetime] | None = None, fmt: str = "parquet",
    ) -> PartitionInfo:
        """Write one partition from a stream of batches and make it visible only when it is complete.
        `window` is the [start, end) its rows come from, kept in the manifest (see overlapping).
        `fmt`: the parts' format, "parquet", "csv" or "xlsx"."""
        writer = self._part_writer(fmt, table)
        if self.local:
            self._write_local(schema, table, batch_date, arrow_schema, batches, window, writer)
        else:
            self._write_objects(schema, table, batch_date, arrow_schema, batches, window, writer)
        return self.partition(schema, table, batch_date)

    @staticmethod
    def _part_writer(fmt: str, table: str) -> PartWriter:
        if fmt == "parquet":
            return ParquetParts(ROWS_PER_FILE, ROW_GROUP_ROWS)  # read here, so a test may lower ROWS_PER_FILE
        if fmt == "csv":
            return CsvPart()
        if fmt == "xlsx":
            from dagspec.store_xlsx import XlsxPart

            return XlsxPart(sheet_name=table)
        raise ValueError(f"unknown partition format {fmt!r}")

    def overlapping(self, schema: str, table: str, batch_date: Key, window: tuple[datetime, datetime]
                    ) -> list[tuple[PartitionKey, datetime, datetime]]:
        """Other partitions of the table whose rows come from part of `window`: writing this one beside them
        would hold those rows twice (a daily and a sub-daily partition of one day included). A partition without
        a recorded window holds the day of its batch_date. Partitions never overlap one another, so only the
        nearest earlier one and those inside can."""
        start, end = window
        own = as_key(batch_date)
        keys = [k for k in self.partitions(schema, table) if k != own and k.day < end.date() + timedelta(days=1)]
        earlier = [k for k in keys if k.day < start.date() or (k.utc_start is not None and k.utc_start < start)]
        found = []
        for k in [*earlier[-1:], *(k for k in keys if k not in earlier and (k.utc_start or start) < end)]:
            manifest = self._read_manifest(self._partition_path(schema, table, k))
            if manifest and manifest.window:
                lo, hi = manifest.window
            else:
                lo = datetime(k.day.year, k.day.month, k.day.day, tzinfo=start.tzinfo)
                hi = lo + timedelta(days=1)
            if lo < end and start < hi:
                found.append((k, lo, hi))
        return found

    def _write_local(self, schema: str, table: str, batch_date: Key, arrow_schema: pa.Schema,
                     batches: Iterable[pa.RecordBatch], window: tuple[datetime, datetime] | None,
                     writer: PartWriter) -> None:
        final = Path(self._partition_path(schema, table, batch_date))
        make_dirs(final.parent)
        self._sweep_local(final.parent)  # leftovers of versions that kept temporaries in the table folder
        tmp = self.local_temp(f"{schema}.{table}.{as_key(batch_date).segment.replace('/', '.')}")
        try:
            direct = batches.write_parquet if isinstance(batches, SelfWriting) else None
            if direct is not None and writer.suffix == "parquet":
                files = [written_by(direct, f"{tmp}/part-00000.parquet", arrow_schema)]
            else:
                files = writer.write(self.fs, str(tmp), lambda i: f"part-{i:05d}.{writer.suffix}", arrow_schema,
                                     batches, [])
            self._put_manifest(f"{tmp}/{MANIFEST}", self._manifest_of(batch_date, arrow_schema, files, window))
            swap_in(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _sweep_local(self, folder: Path) -> None:
        """Remove what a killed writer left (temp and old copies) once it is stale: a younger one may be
        another writer at work right now."""
        cutoff = datetime.now().timestamp() - self.stray_grace.total_seconds()
        in_temp = folder.name == TEMP and folder.parent == Path(self.location.path)
        for p in folder.iterdir():
            if in_temp or (p.name.startswith(("_tmp_batch_date=", "_old_batch_date=")) and is_ours(p.name)):
                try:
                    if p.stat().st_mtime < cutoff:
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
                except FileNotFoundError:
                    pass

    def _write_objects(self, schema: str, table: str, batch_date: Key, arrow_schema: pa.Schema,
                       batches: Iterable[pa.RecordBatch], window: tuple[datetime, datetime] | None,
                       writer: PartWriter) -> None:
        prefix = self._partition_path(schema, table, batch_date)
        previous = self._read_manifest(prefix)
        run = uuid.uuid4().hex[:12]
        written: list[str] = []
        try:
            files = writer.write(self.fs, prefix, lambda i: f"part-{run}-{i:05d}.{writer.suffix}", arrow_schema,
                                 batches, written)
        except BaseException:
            # Not committed, so invisible either way; tidy up what we can.
            for name in written:
                delete_quietly(self.fs, f"{prefix}/{name}")
            raise
        self._put_manifest(f"{prefix}/{MANIFEST}", self._manifest_of(batch_date, arrow_schema, files, window))  # commit
        keep = {f.name for f in files} | {MANIFEST}
        replaced = {f.name for f in previous.files} if previous else set()
        self._sweep_objects(prefix, keep, replaced)

    def _sweep_objects(self, prefix: str, keep: set[str], replaced: set[str]) -> None:
        cutoff = datetime.now(UTC) - self.stray_grace
        listing = self.fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
        for entry in listing:
            if entry.type != pafs.FileType.File:
                continue
            name = entry.path[len(prefix) + 1:]
            if name in keep or not is_ours(name):  # a foreign object (an adopted part, _SUCCESS, ...) stays
                continue
            mtime = entry.mtime
            stale = mtime is not None and (mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)) < cutoff
            if name in replaced or stale:
                delete_quietly(self.fs, entry.path)

    @staticmethod
    def _manifest_of(batch_date: Key, arrow_schema: pa.Schema, files: list, window: tuple[datetime, datetime] | None
                     ) -> Manifest:
        key = as_key(batch_date)
        return Manifest.of(key.day, arrow_schema, files, window, batch_start=key.utc_start)

    def _put_manifest(self, path: str, manifest: Manifest) -> None:
        with self.fs.open_output_stream(path) as out:
            out.write(manifest.to_bytes())

    # -- reading -----------------------------------------------------------------------------------
    def _read_manifest(self, prefix: str) -> Manifest | None:
        data = self._read_bytes(f"{prefix}/{MANIFEST}")
        return None if data is None else Manifest.from_bytes(data)

    def _read_json(self, path: str) -> dict | None:
        data = self._read_bytes(path)
        return None if data is None else json.loads(data)

    def _read_bytes(self, path: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(path) as fh:
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            # Some stores word "not found" differently; anything else is a real error.
            if "not found" in str(exc).lower() or "nosuchkey" in str(exc).lower() or "404" in str(exc):
                return None
            raise

    def _manifest(self, schema: str, table: str, batch_date: Key) -> tuple[str, Manifest, str]:
        """(prefix, manifest, sha256 of its bytes), all from one read."""
        prefix = self._partition_path(schema, table, batch_date)
        data = self._read_bytes(f"{prefix}/{MANIFEST}")
        if data is None:
            raise FileNotFoundError(
                f"no staged partition {schema}.{table} {as_key(batch_date).segment} in {self.location.uri()}: "
                "did the step that writes it run?"
            )
        return prefix, Manifest.from_bytes(data), hashlib.sha256(data).hexdigest()

    def partition(self, schema: str, table: str, batch_date: Key) -> PartitionInfo:
        prefix, manifest, digest = self._manifest(schema, table, batch_date)
        uri = self.location.uri
        return PartitionInfo(
            uri(prefix), manifest.rows, [uri(f"{prefix}/{f.name}") for f in manifest.files], manifest.columns, digest,
        )

    def manifest_digest(self, schema: str, table: str, batch_date: Key) -> str | None:
        """The sha256 naming the committed version of a partition, or None when there is none."""
        data = self._read_bytes(f"{self._partition_path(schema, table, batch_date)}/{MANIFEST}")
        return None if data is None else hashlib.sha256(data).hexdigest()

    def dataset(self, schema: str, table: str, batch_dates: Iterable[Key],
                pinned: dict[Key, str] | None = None) -> pads.Dataset:
        """The committed files of the given partitions, on this store's file system (DuckDB can scan it).
        `pinned`: date -> the only manifest sha256 accepted for it (else PartitionChanged), checked on the
        same manifest read that lists the files. A local partition is re-written under the same file names,
        so a pinned one is read through hard links taken (and the version checked again) before returning:
        a swap after that cannot change what the caller reads. On S3/GCS a new version's parts have new
        names and the replaced ones are deleted, so a late reader fails rather than reading other rows."""
        paths = []
        for d in batch_dates:
            prefix, manifest, digest = self._manifest(schema, table, d)
            if pinned and d in pinned:
                if pinned[d] != digest:
                    raise PartitionChanged(schema, table, d, pinned[d], digest)
                if self.local:
                    prefix = self._hold(schema, table, d, prefix, manifest, digest)
            paths += [f"{prefix}/{f.name}" for f in manifest.files]
        import pyarrow.dataset as pads  # here, not at the top: it imports pandas (~45 MB, 0.3 s) into every extract

        return pads.dataset(paths, format="parquet", filesystem=self.fs)

    def batch_dates(self, schema: str, table: str) -> list[date]:
        """Local dates with at least one committed partition."""
        return sorted({k.day for k in self.partitions(schema, table)})

    def partitions(self, schema: str, table: str) -> list[PartitionKey]:
        """Every committed partition, in time order. Object stores are listed recursively: prefix listing is what
        every store (and the GCS emulator, which lacks delimiter listing) supports. A folder without a manifest
        (the seed's history before `dagspec adopt`) is not a partition."""
        folder = self._table_path(schema, table)
        found: set[PartitionKey] = set()
        if self.local:
            path = Path(folder)
            if not path.is_dir():
                return []
            for p in path.iterdir():
                if not (m := _PARTITION.match(p.name)):
                    continue
                day = date.fromisoformat(m.group(1))
                if (p / MANIFEST).is_file():
                    found.add(PartitionKey(day))
                    continue  # a day staged whole is never also staged by the hour (overlapping refuses it)
                found.update(k for q in p.iterdir() if (k := PartitionKey.parse(day, q.name)) and (q / MANIFEST).is_file())
            return sorted(found, key=PartitionKey.sort_key)
        for entry in self.fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True)):
            names = entry.path[len(folder) + 1:].split("/")
            if names[-1] != MANIFEST or not (m := _PARTITION.match(names[0])) or len(names) not in (2, 3):
                continue
            day = date.fromisoformat(m.group(1))
            key = PartitionKey(day) if len(names) == 2 else PartitionKey.parse(day, names[1])
            if key is not None:
                found.add(key)
        whole = {k.day for k in found if not k.is_sub_daily}  # as on a local disk: a day staged whole hides hours
        return sorted((k for k in found if not k.is_sub_daily or k.day not in whole), key=PartitionKey.sort_key)
