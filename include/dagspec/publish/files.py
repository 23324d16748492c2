"""Export a batch as files in the partition layout: Parquet through the Store, CSV beside it.

CSV follows the Store's own commit rules so readers never see half a partition and a re-run
replaces exactly one: locally a folder under `<store>/_tmp/` fsynced and swapped in whole; on
S3/GCS uniquely named parts, then the manifest as the commit point, then the replaced parts deleted.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.csv as pacsv

from dagspec.store_io import HashingSink, delete_quietly, make_dirs, swap_in


def export_partition(store, fmt: str, schema: str, table: str, batch_date: date, arrow_schema: pa.Schema,
                     batches: Iterable[pa.RecordBatch]):
    if fmt == "parquet":
        return store.write_partition(schema, table, batch_date, arrow_schema, batches)
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}")
    if store.local:
        _csv_local(store, schema, table, batch_date, arrow_schema, batches)
    else:
        _csv_objects(store, schema, table, batch_date, arrow_schema, batches)
    return store.partition(schema, table, batch_date)


def _write_csv(store, path: str, arrow_schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> dict:
    sink = HashingSink(store.fs.open_output_stream(path))
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
    return {"name": path.rsplit("/", 1)[1], "rows": rows, "bytes": sink.size, "sha256": sink.hexdigest()}


def _csv_local(store, schema, table, batch_date, arrow_schema, batches) -> None:
    from dagspec.store import MANIFEST

    final = Path(store.partition_dir(schema, table, batch_date))
    make_dirs(final.parent)
    tmp = store.local_temp(f"{schema}.{table}.{final.name}")
    try:
        part = _write_csv(store, f"{tmp}/part-00000.csv", arrow_schema, batches)
        store._put_manifest(f"{tmp}/{MANIFEST}", batch_date, arrow_schema, [part])
        swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _csv_objects(store, schema, table, batch_date, arrow_schema, batches) -> None:
    from dagspec.store import MANIFEST

    prefix = store._partition_path(schema, table, batch_date)
    previous = store._read_manifest(prefix)
    name = f"part-{uuid.uuid4().hex[:12]}-00000.csv"
    try:
        part = _write_csv(store, f"{prefix}/{name}", arrow_schema, batches)
    except BaseException:
        delete_quietly(store.fs, f"{prefix}/{name}")
        raise
    store._put_manifest(f"{prefix}/{MANIFEST}", batch_date, arrow_schema, [part])  # the commit point
    replaced = {f["name"] for f in previous["files"]} if previous else set()
    store._sweep_objects(prefix, {name, MANIFEST}, replaced)
