"""Partitions: written whole, swapped in atomically, replaced exactly, with a manifest that tells the truth."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime

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


def test_local_store_from_a_connection_and_what_a_bad_one_says(tmp_path):
    from dagspec.connections import ConnectionInfo

    store = Store.from_connection(ConnectionInfo("st", "fs", extra={"path": str(tmp_path / "lake")}))
    info = store.write_partition("raw", "t", date(2025, 3, 1), SCHEMA, batches(range(2)))
    assert info.path == str(tmp_path / "lake/raw/t/batch_date=2025-03-01")
    with pytest.raises(ValueError, match="'st' needs a folder"):
        Store.from_connection(ConnectionInfo("st", "fs"))
    with pytest.raises(ValueError, match=r"'st' needs extra.path, e.g. .*s3://bucket/prefix"):
        Store.from_connection(ConnectionInfo("st", "aws", login="k", password="secret-x"))
    with pytest.raises(ValueError, match="is a aws connection but 'gs://b/p' is gs://"):
        Store.from_connection(ConnectionInfo("st", "aws", extra={"path": "gs://b/p"}))
    with pytest.raises(ValueError, match="type 'ftp'"):
        Store.from_connection(ConnectionInfo("st", "ftp", extra={"path": "s3://b/p"}))


def test_cloud_connections_map_to_pyarrow_file_systems():
    import pyarrow.fs as pafs

    from dagspec.connections import parse_connection

    s3 = Store.from_connection(parse_connection("st", json.dumps({
        "conn_type": "aws", "login": "AKIA", "password": "secret-x",
        "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-1", "path": "s3://bkt/pre/fix/"}})))
    assert isinstance(s3.fs, pafs.S3FileSystem)
    assert (s3.fs.region, s3.location.path, str(s3.root)) == ("eu-west-1", "bkt/pre/fix", "s3://bkt/pre/fix")
    assert str(s3.partition_dir("raw", "t", date(2025, 3, 1))) == "s3://bkt/pre/fix/raw/t/batch_date=2025-03-01"
    gcs = Store.from_connection(parse_connection("st", json.dumps({
        "conn_type": "google_cloud_platform", "extra": {"endpoint": "http://127.0.0.1:9", "path": "gs://bkt/p"}})))
    assert isinstance(gcs.fs, pafs.GcsFileSystem)
    assert str(gcs.root) == "gs://bkt/p"


def test_a_killed_writers_leftovers_are_swept_once_stale(tmp_path):
    import os
    from datetime import timedelta

    store = Store(tmp_path)
    store.write_partition("raw", "t", date(2025, 3, 1), SCHEMA, batches(range(1)))
    table_dir = tmp_path / "raw" / "t"
    stale = table_dir / "_tmp_batch_date=2025-03-02_deadbeef"
    fresh = table_dir / "_tmp_batch_date=2025-03-03_cafebabe"
    for d in (stale, fresh):
        d.mkdir()
        (d / "part-00000.parquet").write_bytes(b"half")
    old = (datetime.now() - timedelta(days=2)).timestamp()
    os.utime(stale, (old, old))
    assert store.batch_dates("raw", "t") == [date(2025, 3, 1)]  # leftovers are never partitions
    store.write_partition("raw", "t", date(2025, 3, 4), SCHEMA, batches(range(1)))
    assert not stale.exists()
    assert fresh.exists()  # could be another writer at work right now


class _WritesItself:
    """A source that writes its own Parquet file (as a DuckDB scan does for a local store)."""

    def __init__(self, table: pa.Table):
        self.table = table

    def __iter__(self):
        raise AssertionError("a local store must let the source write the file itself")

    def write_parquet(self, path: str) -> None:
        pq.write_table(self.table, path)


def test_a_source_writing_its_own_file_gets_a_true_manifest(tmp_path):
    table = pa.Table.from_batches(list(batches(range(7))))
    info = Store(tmp_path).write_partition("raw", "t", date(2025, 3, 1), SCHEMA, _WritesItself(table))
    folder = tmp_path / "raw/t/batch_date=2025-03-01"
    manifest = json.loads((folder / MANIFEST).read_text())
    part = folder / "part-00000.parquet"
    assert info.rows == 7 == manifest["rows"] and pq.read_table(part).equals(table)
    assert manifest["files"] == [{"name": "part-00000.parquet", "rows": 7, "bytes": part.stat().st_size,
                                  "sha256": hashlib.sha256(part.read_bytes()).hexdigest()}]


def test_a_file_whose_schema_differs_from_the_plan_is_refused_and_the_old_partition_kept(tmp_path):
    store = Store(tmp_path)
    d = date(2025, 3, 1)
    store.write_partition("raw", "t", d, SCHEMA, batches(range(3)))
    other = pa.table({"id": pa.array([1], pa.int32()), "name": pa.array(["x"], pa.large_string())})
    with pytest.raises(TypeError, match="the source wrote"):
        store.write_partition("raw", "t", d, SCHEMA, _WritesItself(other))
    assert store.partition("raw", "t", d).rows == 3
    assert [p.name for p in (tmp_path / "raw/t").iterdir()] == ["batch_date=2025-03-01"]
