"""The store on real object-store protocols (moto's S3 server, gcp-storage-emulator): partitions written,
replaced and read through the manifest; a failed or killed write leaves the old partition whole."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.expected import expected_revenue, warehouse_rows

from dagspec.connections import parse_connection
from dagspec.store import MANIFEST, Store

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.large_string())])
DAY = date(2025, 3, 1)

pytestmark = pytest.mark.service


def batches(ids):
    ids = list(ids)
    yield pa.RecordBatch.from_pydict({"id": ids, "name": [f"n{i}" for i in ids]}, schema=SCHEMA)


class Cloud:
    """One store under test plus an independent view of its bucket (boto3 / google-cloud-storage)."""

    def __init__(self, kind: str, server):
        self.kind, self.server = kind, server
        self.bucket = server.make_bucket("store")
        self.scheme = "s3" if kind == "s3" else "gs"
        self.conn = parse_connection("test_store", server.connection_json(f"{self.scheme}://{self.bucket}/lake"))

    def store(self, **kw) -> Store:
        return Store(Store.from_connection(self.conn).location, **kw)

    def keys(self, prefix: str = "lake/") -> dict[str, bytes]:
        """Every object under the prefix with its bytes, read without pyarrow."""
        if self.kind == "s3":
            client = self.server.client()
            listed = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
            return {o["Key"]: client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in listed}
        bucket = self.server.client().bucket(self.bucket)
        return {b.name: b.download_as_bytes() for b in bucket.list_blobs(prefix=prefix)}


@pytest.fixture(params=["s3", "gcs"])
def cloud(request) -> Cloud:
    return Cloud(request.param, request.getfixturevalue(f"{request.param}_server"))


def names_in(cloud: Cloud, day: date = DAY) -> list[str]:
    prefix = f"lake/raw/t/batch_date={day.isoformat()}/"
    # pyarrow's S3 delete leaves an empty "folder/" marker object; it is not a file to any reader
    return sorted(k[len(prefix):] for k in cloud.keys(prefix) if not k.endswith("/"))


def test_write_then_replace_partition(cloud):
    store = cloud.store()
    first = store.write_partition("raw", "t", DAY, SCHEMA, batches(range(10)))
    assert first.rows == 10
    assert first.path == f"{cloud.scheme}://{cloud.bucket}/lake/raw/t/batch_date=2025-03-01"
    info = store.write_partition("raw", "t", DAY, SCHEMA, batches(range(100, 103)))
    assert info.rows == 3
    assert store.dataset("raw", "t", [DAY]).to_table().column("id").to_pylist() == [100, 101, 102]
    # the replaced partition's parts are gone: only the new part and the manifest remain
    new_part = info.files[0].rsplit("/", 1)[1]
    assert names_in(cloud) == sorted([MANIFEST, new_part])
    assert new_part != first.files[0].rsplit("/", 1)[1]


def test_manifest_tells_the_truth_about_the_objects(cloud):
    info = cloud.store().write_partition("raw", "t", DAY, SCHEMA, batches(range(5)))
    objects = {k: v for k, v in cloud.keys("lake/raw/t/batch_date=2025-03-01/").items() if not k.endswith("/")}
    manifest = json.loads(objects.pop(f"lake/raw/t/batch_date=2025-03-01/{MANIFEST}"))
    assert manifest["rows"] == 5 == info.rows
    assert manifest["batch_date"] == "2025-03-01"
    assert manifest["schema"] == [{"name": "id", "type": "int64"}, {"name": "name", "type": "large_string"}]
    [(key, body)] = objects.items()
    [entry] = manifest["files"]
    assert key.endswith("/" + entry["name"])
    assert entry["rows"] == 5
    assert entry["bytes"] == len(body) == manifest["bytes"]
    assert entry["sha256"] == hashlib.sha256(body).hexdigest()
    assert pq.read_table(pa.BufferReader(body)).column("id").to_pylist() == [0, 1, 2, 3, 4]


def test_failure_mid_write_keeps_the_old_partition_intact(cloud, monkeypatch):
    import dagspec.store

    store = cloud.store()
    store.write_partition("raw", "t", DAY, SCHEMA, batches(range(4)))
    before = names_in(cloud)
    monkeypatch.setattr(dagspec.store, "ROWS_PER_FILE", 10)  # several parts, so some finish before the failure

    def broken():
        for start in range(0, 50, 10):
            yield from batches(range(start, start + 10))
        raise ConnectionError("source went away")

    with pytest.raises(ConnectionError):
        store.write_partition("raw", "t", DAY, SCHEMA, broken())
    info = store.partition("raw", "t", DAY)
    assert info.rows == 4
    assert store.dataset("raw", "t", [DAY]).to_table().column("id").to_pylist() == [0, 1, 2, 3]
    assert names_in(cloud) == before  # the failed run's parts were removed too
    assert store.batch_dates("raw", "t") == [DAY]


KILLED_WRITER = """
import os, sys, time
import pyarrow as pa
import dagspec.store
from dagspec.connections import parse_connection
from dagspec.store import Store
dagspec.store.ROWS_PER_FILE = 10
schema = pa.schema([("id", pa.int64()), ("name", pa.large_string())])
def endless():
    for start in range(1000, 1030, 10):
        ids = list(range(start, start + 10))
        yield pa.RecordBatch.from_pydict({"id": ids, "name": [f"n{i}" for i in ids]}, schema=schema)
    print("parts written", flush=True)
    time.sleep(600)
store = Store.from_connection(parse_connection("test_store", os.environ["CONN"]))
import datetime
store.write_partition("raw", "t", datetime.date(2025, 3, 1), schema, endless())
"""


def test_killed_writer_leaves_the_old_partition_visible_and_its_strays_invisible(cloud):
    store = cloud.store()
    store.write_partition("raw", "t", DAY, SCHEMA, batches(range(4)))
    committed = names_in(cloud)
    env = {**os.environ, "CONN": json.dumps({"conn_type": cloud.conn.conn_type, "login": cloud.conn.login,
                                             "password": cloud.conn.password, "extra": cloud.conn.extra})}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_WRITER)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "parts written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    strays = sorted(set(names_in(cloud)) - set(committed))
    assert len(strays) >= 2, "the killed writer should have finished some parts"
    assert store.partition("raw", "t", DAY).rows == 4
    assert store.dataset("raw", "t", [DAY]).to_table().column("id").to_pylist() == [0, 1, 2, 3]

    # A young stray may be a concurrent writer's: kept. Once older than the grace period: swept on the next commit.
    store.write_partition("raw", "t", DAY, SCHEMA, batches(range(7)))
    assert set(strays) <= set(names_in(cloud))
    info = cloud.store(stray_grace=timedelta(0)).write_partition("raw", "t", DAY, SCHEMA, batches(range(8)))
    assert names_in(cloud) == sorted([MANIFEST, info.files[0].rsplit("/", 1)[1]])


def test_batch_dates_lists_committed_partitions_only(cloud, monkeypatch):
    store = cloud.store()
    days = [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 10)]
    for i, d in enumerate(days):
        store.write_partition("raw", "t", d, SCHEMA, batches(range(i * 10, i * 10 + 2)))
    store.write_partition("raw", "other", date(2025, 4, 1), SCHEMA, batches(range(1)))

    def broken():
        yield from batches(range(3))
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        store.write_partition("raw", "t", date(2025, 3, 5), SCHEMA, broken())
    assert store.batch_dates("raw", "t") == days
    assert store.batch_dates("raw", "missing") == []
    table = store.dataset("raw", "t", [days[0], days[2]]).to_table()
    assert sorted(table.column("id").to_pylist()) == [0, 1, 20, 21]


def test_duckdb_scans_a_partition_in_the_bucket(cloud):
    import duckdb

    store = cloud.store()
    store.write_partition("raw", "t", DAY, SCHEMA, batches(range(1000)))
    con = duckdb.connect()
    con.register("t", store.dataset("raw", "t", [DAY]))
    assert con.execute("SELECT count(*), sum(id), max(name) FROM t").fetchone() == (1000, 499500, "n999")


def test_missing_partition_names_the_store(cloud):
    with pytest.raises(FileNotFoundError, match=f"{cloud.scheme}://{cloud.bucket}/lake.*did the step that writes it run"):
        cloud.store().partition("raw", "t", DAY)


def test_a_missing_bucket_fails_clearly_without_the_secret(s3_server):
    conn = parse_connection("bad_store", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "s3cr3t-value",
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1",
                  "path": "s3://no-such-bucket-dagspec/x"}}))
    assert "s3cr3t-value" not in repr(conn)
    with pytest.raises(OSError) as err:
        Store.from_connection(conn).write_partition("raw", "t", DAY, SCHEMA, batches(range(1)))
    assert "no-such-bucket-dagspec" in str(err.value)
    assert "s3cr3t-value" not in str(err.value)


def test_pipeline_with_the_store_in_a_bucket_gives_the_same_warehouse_rows(data_home, cloud, monkeypatch):
    """orders_daily end to end (extract, validate, transform, publish + export) with AIRFLOW_CONN_DAGSPEC_STORE
    pointing at the bucket: the warehouse ends up exactly as with the local store."""
    from dagspec.runner import run_pipeline, window_of_day
    from dagspec.spec import load_definition

    pipeline = load_definition(ROOT / "dags" / "definitions" / "orders_daily.json")
    queries = ["SELECT * FROM analytics.daily_revenue ORDER BY channel",
               "SELECT * FROM analytics.orders ORDER BY order_id"]
    wh = data_home / "warehouse.duckdb"

    run_pipeline(pipeline, window_of_day(pipeline, DAY))
    local = [warehouse_rows(wh, q) for q in queries]
    assert local[0] == expected_revenue(data_home / "source.db", DAY)

    wh.unlink()
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_STORE", cloud.server.connection_json(f"{cloud.scheme}://{cloud.bucket}/lake"))
    run_pipeline(pipeline, window_of_day(pipeline, DAY))
    assert [warehouse_rows(wh, q) for q in queries] == local

    objects = cloud.keys("lake/")
    manifest = json.loads(objects["lake/raw/orders/batch_date=2025-03-01/_manifest.json"])
    assert manifest["rows"] == len(local[1])
    assert any(k.startswith("lake/raw/orders/batch_date=2025-03-01/part-") for k in objects)
    exported = json.loads(objects["lake/analytics/daily_revenue/batch_date=2025-03-01/_manifest.json"])
    assert exported["rows"] == len(local[0])
