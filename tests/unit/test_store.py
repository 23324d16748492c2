"""Partitions: written whole, swapped in atomically, replaced exactly, with a manifest that tells the truth."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagspec.store import MANIFEST, Store

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.large_string())])


def batches(ids):
    yield pa.RecordBatch.from_pydict({"id": list(ids), "name": [f"n{i}" for i in ids]}, schema=SCHEMA)


def test_write_then_replace_partition(tmp_path):
    store = Store(tmp_path)
    d = date(2025, 3, 1)
    store.write_partition("raw", "t", d, SCHEMA, batches(range(10)))
    info = store.write_partition("raw", "t", d, SCHEMA, batches(range(100, 103)))
    folder = tmp_path / "raw" / "t" / "batch_date=2025-03-01"
    assert info.rows == 3
    assert pq.read_table(info.files[0]).column("id").to_pylist() == [100, 101, 102]
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "part-00000.parquet"]
    # nothing left over beside the partition (no temp or old copies)
    assert [p.name for p in folder.parent.iterdir()] == ["batch_date=2025-03-01"]


def test_manifest_has_rows_schema_bytes_and_checksum(tmp_path):
    info = Store(tmp_path).write_partition("raw", "t", date(2025, 3, 1), SCHEMA, batches(range(5)))
    manifest = json.loads((tmp_path / "raw/t/batch_date=2025-03-01" / MANIFEST).read_text())
    part = tmp_path / "raw/t/batch_date=2025-03-01/part-00000.parquet"
    assert manifest["rows"] == 5 == info.rows
    assert manifest["schema"] == [{"name": "id", "type": "int64"}, {"name": "name", "type": "large_string"}]
    assert manifest["files"][0]["bytes"] == part.stat().st_size
    assert manifest["files"][0]["sha256"] == hashlib.sha256(part.read_bytes()).hexdigest()


def test_empty_batch_still_records_the_date(tmp_path):
    info = Store(tmp_path).write_partition("raw", "t", date(2025, 3, 1), SCHEMA, iter(()))
    assert info.rows == 0
    assert pq.read_table(info.files[0]).schema.names == ["id", "name"]


def test_failure_mid_write_keeps_the_old_partition_intact(tmp_path):
    store = Store(tmp_path)
    d = date(2025, 3, 1)
    store.write_partition("raw", "t", d, SCHEMA, batches(range(4)))

    def broken():
        yield from batches(range(50))
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        store.write_partition("raw", "t", d, SCHEMA, broken())
    info = store.partition("raw", "t", d)
    assert info.rows == 4
    assert pq.read_table(info.files[0]).column("id").to_pylist() == [0, 1, 2, 3]
    assert [p.name for p in (tmp_path / "raw/t").iterdir()] == ["batch_date=2025-03-01"]


def test_same_input_gives_byte_identical_files(tmp_path):
    a = Store(tmp_path / "a").write_partition("raw", "t", date(2025, 3, 1), SCHEMA, batches(range(1000)))
    b = Store(tmp_path / "b").write_partition("raw", "t", date(2025, 3, 1), SCHEMA, batches(range(1000)))
    assert open(a.files[0], "rb").read() == open(b.files[0], "rb").read()


def test_dataset_reads_selected_batches(tmp_path):
    store = Store(tmp_path)
    for i, d in enumerate([date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]):
        store.write_partition("raw", "t", d, SCHEMA, batches(range(i * 10, i * 10 + 2)))
    table = store.dataset("raw", "t", [date(2025, 3, 1), date(2025, 3, 3)]).to_table()
    assert sorted(table.column("id").to_pylist()) == [0, 1, 20, 21]
    assert store.batch_dates("raw", "t") == [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]


def test_missing_partition_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="did the step that writes it run"):
        Store(tmp_path).partition("raw", "t", date(2025, 3, 1))
