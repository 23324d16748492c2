"""Adopting partitions dagspec did not write: the seed DAG creator's history at
`<store>/<schema>/<table>/batch_date=YYYY-MM-DD/`, Parquet files without a manifest, named however
Redshift UNLOAD named them (`0000_part_00.parquet`), maybe beside a `_SUCCESS` or `manifest` file.

Adopting one writes the `_manifest.json` readers go through, from the files' Parquet footers (schema
and row counts; the data is not decoded) and one streamed pass over each file for its sha256. The
files stay where they are, under their own names: store_owned keeps dagspec from ever deleting them.
A partition is refused whole when one of its files is not Parquet, when its files disagree on their
columns, or when a file is named like dagspec's own parts; others go on.

The commit is the store's own: on S3/GCS the manifest's single PUT; locally the manifest is written under
`<store>/_tmp/`, fsynced and linked into place, a link that fails when a manifest is there already, so an
existing manifest (dagspec's or an earlier adoption's) is replaced only with `replace=True`. S3 and GCS
have no such create-if-absent here: a writer committing the same date between the check and the PUT loses.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dagspec.store_io import fsync_path
from dagspec.store_manifest import Manifest, PartFile
from dagspec.store_owned import MANIFEST, is_ours

_DAY = re.compile(r"batch_date=(.*)")


@dataclass
class Found:
    """One `batch_date=` folder under a table: its files (name relative to it, size in bytes)."""

    name: str
    day: date | None
    files: dict[str, int] = field(default_factory=dict)


@dataclass
class Adoption:
    name: str
    outcome: str  # adopted | would adopt | skipped | refused
    rows: int = 0
    reason: str = ""


def _marker(name: str) -> bool:
    """Not data: our manifest, a hidden or `_`-file (`_SUCCESS`), UNLOAD's MANIFEST output (`...manifest`)."""
    base = name.rsplit("/", 1)[-1]
    return name == MANIFEST or base.startswith(("_", ".")) or base.lower().endswith("manifest")


def _columns(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name} {f.type}" for f in schema)


class StoreAdopt:
    """Mixed into Store: needs location, fs, local, _table_path, _read_manifest, _put_manifest and local_temp."""

    def found_partitions(self, schema: str, table: str, start: date | None = None, end: date | None = None
                         ) -> list[Found]:
        """Every `batch_date=` folder under the table with its files, manifest or not, between start and end
        (inclusive). A folder whose date does not parse is kept (day None), to be refused by name."""
        folder = self._table_path(schema, table)
        found: dict[str, Found] = {}
        selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
        for entry in self.fs.get_file_info(selector):
            head, _, rest = entry.path[len(folder) + 1:].partition("/")
            if not (m := _DAY.fullmatch(head)):
                continue
            if head not in found:
                try:
                    day = date.fromisoformat(m.group(1)) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.group(1)) else None
                except ValueError:
                    day = None
                found[head] = Found(head, day)
            if rest and entry.type == pafs.FileType.File:
                found[head].files[rest] = entry.size
        return sorted((f for f in found.values() if f.day is None or (
            (start is None or f.day >= start) and (end is None or f.day <= end))), key=lambda f: f.name)

    def adopt(self, schema: str, table: str, found: Found, replace: bool = False, dry_run: bool = False
              ) -> Adoption:
        """Write a true manifest for one found partition (see the module docstring), or say why not."""
        if found.day is None:
            return Adoption(found.name, "refused", reason="the folder name is not batch_date=YYYY-MM-DD")
        if MANIFEST in found.files and not replace:
            return Adoption(found.name, "skipped", reason="it has a manifest already (--force replaces it)")
        prefix = f"{self._table_path(schema, table)}/{found.name}"
        existing = self._read_manifest(prefix) if MANIFEST in found.files else None
        if MANIFEST in found.files and not (existing and existing.adopted):
            return Adoption(found.name, "refused", reason="its manifest was written by a dagspec run, not by adopt: "
                            "adopting it again would hide that run's rows (fix: re-run the date instead)")
        parts = sorted(n for n in found.files if not _marker(n))
        if not parts:
            return Adoption(found.name, "skipped", reason="no data files in it (an empty partition)")
        nested = [n for n in parts if "/" in n]
        if nested:
            return Adoption(found.name, "refused", reason=f"{nested[0]!r} is in a subfolder: a partition is flat and "
                            "a subfolder's key=value would be a column lost (fix: rewrite it flat, the key as a column)")
        globby = [n for n in parts if any(c in n for c in "*?[")]
        if globby:  # measured: a listed 'x[1].parquet' made DuckDB read x1.parquet's rows instead
            return Adoption(found.name, "refused", reason=f"{globby[0]!r} holds a glob character (* ? [): DuckDB, "
                            "which validate reads parts with, would take it for a pattern (fix: rename the file)")
        clash = [n for n in parts if is_ours(n)]
        if clash:
            return Adoption(found.name, "refused", reason=f"{clash[0]!r} is named like dagspec's own parts, so a "
                            "re-run could delete it (fix: rename the file, then adopt again)")
        first: tuple[str, pa.Schema] | None = None
        sized: list[tuple[str, int]] = []  # (name, rows)
        for name in parts:
            try:
                with self.fs.open_input_file(f"{prefix}/{name}") as fh:
                    meta = pq.read_metadata(fh)
            except pa.ArrowInvalid as exc:  # a store that cannot be read (OSError) is not the file's fault
                return Adoption(found.name, "refused", reason=f"{name!r} is not a Parquet file ({str(exc)[:120]})")
            arrow = meta.schema.to_arrow_schema()
            if first is None:
                first = (name, arrow)
            elif [(f.name, f.type) for f in arrow] != [(f.name, f.type) for f in first[1]]:
                return Adoption(found.name, "refused", reason=f"its files disagree on columns: {name!r} has "
                                f"({_columns(arrow)}) where {first[0]!r} has ({_columns(first[1])})")
            sized.append((name, meta.num_rows))
        rows = sum(n for _, n in sized)
        if dry_run:
            return Adoption(found.name, "would adopt", rows)
        files = [PartFile(name, n, *self._digest(f"{prefix}/{name}")) for name, n in sized]
        start = datetime(found.day.year, found.day.month, found.day.day, tzinfo=UTC)
        manifest = Manifest.of(found.day, first[1], files, (start, start + timedelta(days=1)), adopted=True)
        if not self._commit_adopted(prefix, manifest, replace):
            return Adoption(found.name, "skipped", reason="a manifest appeared while adopting it (--force replaces it)")
        return Adoption(found.name, "adopted", rows)

    def _digest(self, path: str) -> tuple[int, str]:
        digest, size = hashlib.sha256(), 0
        with self.fs.open_input_stream(path) as fh:
            while chunk := fh.read(8 << 20):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _commit_adopted(self, prefix: str, manifest: Manifest, replace: bool) -> bool:
        target = f"{prefix}/{MANIFEST}"
        if not self.local:
            if not replace and self.fs.get_file_info(target).type != pafs.FileType.NotFound:
                return False
            self._put_manifest(target, manifest)  # the commit point
            return True
        tmp = self.local_temp(f"adopt.{manifest.batch_date.isoformat()}")
        try:
            self._put_manifest(f"{tmp}/{MANIFEST}", manifest)
            fsync_path(f"{tmp}/{MANIFEST}")
            if replace:
                os.replace(f"{tmp}/{MANIFEST}", target)
            else:
                try:
                    os.link(f"{tmp}/{MANIFEST}", target)  # fails, rather than replaces, when one is there
                except FileExistsError:
                    return False
                except OSError:  # no hard links on this file system: a check, then the rename
                    if os.path.exists(target):
                        return False
                    os.replace(f"{tmp}/{MANIFEST}", target)
            fsync_path(prefix)
            return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
