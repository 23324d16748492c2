"""Sub-daily partitions in an S3 store (moto's server): the same `batch_date=D/batch_time=HHMM[+-HHMM]/` layout and
manifests as on disk, exact rows per hour, a re-run replacing one hour only, and a foreign `batch_time=` object
under a day staged whole not listed as a partition (as on disk)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from support.subdaily import hourly, source_ids

from dagspec.connections import env_resolver
from dagspec.freshness import check_freshness
from dagspec.partitions import PartitionKey
from dagspec.runner import run_step
from dagspec.store import Store

START = datetime(2025, 3, 9, 5, tzinfo=UTC)  # New York's 23-hour day


def test_hourly_new_york_partitions_in_s3(data_home, s3_server, monkeypatch):
    bucket = s3_server.make_bucket("sd")
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_STORE", s3_server.connection_json(f"s3://{bucket}/lake"))
    p = hourly("sds3", timezone="America/New_York", freshness={"max_age_hours": 2})
    run_step(p, "extract_orders", START, START + timedelta(hours=4))  # 00:00, 01:00, 03:00, 04:00 local
    store = Store.from_connection(env_resolver("dagspec_store"))
    keys = store.partitions("raw", "sds3_orders")
    assert [k.segment for k in keys] == [f"batch_date=2025-03-09/batch_time={t}" for t in
                                         ("0000-0500", "0100-0500", "0300-0400", "0400-0400")]
    fs = s3_server.filesystem()
    for k in keys:
        lo = k.utc_start
        table = store.dataset("raw", "sds3_orders", [k]).to_table()
        assert sorted(table.column("order_id").to_pylist()) == source_ids(data_home, lo, lo + timedelta(hours=1))
        manifest = json.loads(fs.open_input_file(f"{bucket}/lake/raw/sds3_orders/{k.segment}/_manifest.json").read())
        assert manifest["batch_start"] == lo.isoformat()
    # one hour re-run: its manifest is replaced, the others' bytes stay
    before = {k: store.manifest_digest("raw", "sds3_orders", k) for k in keys}
    run_step(p, "extract_orders", START + timedelta(hours=1), START + timedelta(hours=2))
    after = {k: store.manifest_digest("raw", "sds3_orders", k) for k in keys}
    assert [k for k in keys if before[k] != after[k]] == [keys[1]]
    (fresh,) = check_freshness(p, now=START + timedelta(hours=5))
    assert (fresh.latest, fresh.age_hours, fresh.stale) == (keys[-1], 1.0, False)


def test_a_foreign_batch_time_object_under_a_whole_day_is_not_a_partition(data_home, s3_server):
    bucket = s3_server.make_bucket("sdf")
    store = Store(f"s3://{bucket}/lake", filesystem=s3_server.filesystem())
    data = pa.table({"x": [1, 2]})
    store.write_partition("raw", "t", START.date(), data.schema, data.to_batches())
    # another tool's folder below the daily partition, even with a file named like our manifest
    fs = s3_server.filesystem()
    folder = f"{bucket}/lake/raw/t/batch_date=2025-03-09/batch_time=0100"
    with fs.open_output_stream(f"{folder}/_manifest.json") as f:
        f.write(b"{}")
    pq.write_table(pa.table({"y": ["z"]}), f"{folder}/data.parquet", filesystem=fs)
    assert store.partitions("raw", "t") == [PartitionKey(START.date())]
    store.write_partition("raw", "t", START.date(), data.schema, data.to_batches())  # a re-run leaves it alone
    assert fs.open_input_file(f"{folder}/_manifest.json").read() == b"{}"
    assert store.dataset("raw", "t", [START.date()]).to_table().column("x").to_pylist() == [1, 2]
