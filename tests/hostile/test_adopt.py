"""`dagspec adopt` over the seed's history (Parquet without manifests, UNLOAD's file names, markers beside them),
locally, on moto's S3 server and on the GCS emulator; and the store never deleting an object it did not write itself."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagspec.connections import parse_connection
from dagspec.store import MANIFEST, Store
from dagspec.store_owned import is_ours

DAGSPEC = str(Path(sys.executable).with_name("dagspec"))
SEED = pa.schema([("order_id", pa.int64()), ("amount", pa.float64()), ("batch_date", pa.date32())])
D1, D2, D3, D4, D5 = (date(2024, 5, d) for d in range(1, 6))


def parquet(ids, schema=SEED, day=D1) -> bytes:
    cols = {"order_id": list(ids), "amount": [i * 1.5 for i in ids], "batch_date": [day] * len(ids)}
    buf = io.BytesIO()
    pq.write_table(pa.table({f.name: cols[f.name] for f in schema}, schema=schema), buf)
    return buf.getvalue()


class Bucket:
    """A store root as raw bytes: put and snapshot objects without going through the Store."""

    def __init__(self, kind: str, tmp_path: Path, request):
        self.kind = kind
        if kind == "local":
            self.root = tmp_path / "store"
            self.conn = parse_connection("adopt_store", json.dumps({"conn_type": "fs", "extra": {"path": str(self.root)}}))
        else:
            self.server = request.getfixturevalue(f"{kind}_server")
            self.bucket = self.server.make_bucket("adopt")
            scheme = "s3" if kind == "s3" else "gs"
            self.conn = parse_connection("adopt_store", self.server.connection_json(f"{scheme}://{self.bucket}/lake"))

    def store(self, **kw) -> Store:
        return Store(Store.from_connection(self.conn).location, **kw)

    def put(self, key: str, data: bytes) -> None:
        if self.kind == "local":
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            (self.root / key).write_bytes(data)
        elif self.kind == "gcs":
            self.server.client().bucket(self.bucket).blob(f"lake/{key}").upload_from_string(data)
        else:
            self.server.client().put_object(Bucket=self.bucket, Key=f"lake/{key}", Body=data)

    def objects(self, prefix: str = "") -> dict[str, bytes]:
        if self.kind == "local":
            base = self.root / prefix
            return {str(p.relative_to(self.root)): p.read_bytes() for p in base.rglob("*") if p.is_file()}
        if self.kind == "gcs":
            listed = self.server.client().bucket(self.bucket).list_blobs(prefix=f"lake/{prefix}")
            return {b.name[5:]: b.download_as_bytes() for b in listed if not b.name.endswith("/")}
        client = self.server.client()
        listed = client.list_objects_v2(Bucket=self.bucket, Prefix=f"lake/{prefix}").get("Contents", [])
        return {o["Key"][5:]: client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in listed
                if not o["Key"].endswith("/")}


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.service),
                        pytest.param("gcs", marks=pytest.mark.service)])
def bucket(request, tmp_path) -> Bucket:
    return Bucket(request.param, tmp_path, request)


def seed_history(b: Bucket) -> dict[str, bytes]:
    """The seed's layout: a good partition with markers, mixed schemas, a non-Parquet part, a unicode name, an
    empty partition. Returns the good partition's foreign objects."""
    t = "sales/orders"
    good = {f"{t}/batch_date={D1}/0000_part_00.parquet": parquet(range(3)),
            f"{t}/batch_date={D1}/0001_part_00.parquet": parquet(range(3, 5)),
            f"{t}/batch_date={D1}/_SUCCESS": b"",
            f"{t}/batch_date={D1}/manifest": b'{"entries": []}'}
    for key, data in good.items():
        b.put(key, data)
    b.put(f"{t}/batch_date={D2}/0000_part_00.parquet", parquet(range(2)))
    b.put(f"{t}/batch_date={D2}/0001_part_00.parquet", parquet(range(2), pa.schema(list(SEED)[:2])))
    b.put(f"{t}/batch_date={D3}/0000_part_00.parquet", b"order_id,amount\n1,2\n")
    b.put(f"{t}/batch_date={D4}/commandes été 00.parquet", parquet(range(7), day=D4))
    b.put(f"{t}/batch_date={D5}/_SUCCESS", b"")
    return good


def outcomes(store: Store, **kw) -> dict[date, tuple[str, int, str]]:
    return {f.day: (a.outcome, a.rows, a.reason) for f in store.found_partitions("sales", "orders")
            for a in [store.adopt("sales", "orders", f, **kw)]}


def test_adopt_writes_true_manifests_and_refuses_bad_partitions(bucket):
    good = seed_history(bucket)
    store = bucket.store()
    assert store.batch_dates("sales", "orders") == []  # no manifests: nothing readable yet
    dry = outcomes(store, dry_run=True)
    assert dry[D1][:2] == ("would adopt", 5)
    assert not any(k.endswith(MANIFEST) for k in bucket.objects())  # a dry run writes nothing
    got = outcomes(store)
    assert got[D1][:2] == ("adopted", 5) and got[D4][:2] == ("adopted", 7)
    assert got[D2][0] == "refused" and "disagree on columns" in got[D2][2] and "batch_date date32" in got[D2][2]
    assert got[D3][0] == "refused" and "'0000_part_00.parquet' is not a Parquet file" in got[D3][2]
    assert got[D5][0] == "skipped" and "empty" in got[D5][2]
    assert store.batch_dates("sales", "orders") == [D1, D4]
    manifest = json.loads(bucket.objects()[f"sales/orders/batch_date={D1}/{MANIFEST}"])
    assert manifest["adopted"] is True and manifest["rows"] == 5
    assert manifest["window"] == ["2024-05-01T00:00:00+00:00", "2024-05-02T00:00:00+00:00"]
    assert [(f["name"], f["rows"], f["bytes"], f["sha256"]) for f in manifest["files"]] == [
        (k.rsplit("/", 1)[1], n, len(good[k]), hashlib.sha256(good[k]).hexdigest())
        for k, n in zip(sorted(good)[:2], (3, 2))]
    assert manifest["schema"] == [{"name": "order_id", "type": "int64"}, {"name": "amount", "type": "double"},
                                  {"name": "batch_date", "type": "date32[day]"}]
    assert sorted(store.dataset("sales", "orders", [D1]).to_table().column("order_id").to_pylist()) == list(range(5))
    assert store.dataset("sales", "orders", [D4]).to_table().num_rows == 7
    # adopting again leaves the manifests alone; --force rewrites the same true one
    before = bucket.objects()
    assert outcomes(store)[D1][0] == "skipped" and bucket.objects() == before
    assert outcomes(store, replace=True)[D1][0] == "adopted" and bucket.objects() == before


def test_a_rerun_over_an_adopted_date_keeps_every_foreign_object(bucket):
    good = seed_history(bucket)
    store = bucket.store(stray_grace=timedelta(0))  # every stray counts as stale: the harshest cleanup
    outcomes(store)
    for key in ("extra/notes.txt", "part-00000.parquet.bak", "late arrival.parquet"):  # copied in after adopting
        good[f"sales/orders/batch_date={D1}/{key}"] = key.encode()
        bucket.put(f"sales/orders/batch_date={D1}/{key}", key.encode())
    new = pa.RecordBatch.from_pydict({"order_id": [100, 101], "amount": [1.0, 2.0], "batch_date": [D1, D1]},
                                     schema=SEED)
    for _ in range(2):  # the first re-run replaces the adopted manifest, the second a manifest dagspec wrote
        store.write_partition("sales", "orders", D1, SEED, iter([new]))
        after = bucket.objects(f"sales/orders/batch_date={D1}/")
        assert {k: after.get(k) for k in good} == good  # byte-identical, still in place
        assert store.dataset("sales", "orders", [D1]).to_table().column("order_id").to_pylist() == [100, 101]
        assert not json.loads(after[f"sales/orders/batch_date={D1}/{MANIFEST}"]).get("adopted")
    ours = [k for k in after if k not in good]
    assert len(ours) == 2 and all(is_ours(k.rsplit("/", 1)[1]) for k in ours)  # the manifest and one part
    refused = outcomes(store, replace=True)[D1]  # --force would hide the run's rows behind the seed's
    assert refused[0] == "refused" and "written by a dagspec run" in refused[2]
    assert bucket.objects(f"sales/orders/batch_date={D1}/") == after


def test_own_names_nested_parts_glob_names_and_bad_folder_names_are_refused(bucket):
    bucket.put(f"sales/orders/batch_date={D1}/part-00000.parquet", parquet(range(2)))
    bucket.put(f"sales/orders/batch_date={D1}/0000_part_00.parquet", parquet(range(2)))
    bucket.put(f"sales/orders/batch_date={D2}/region=eu/0000_part_00.parquet", parquet(range(2)))
    bucket.put("sales/orders/batch_date=2024-13-01/0000_part_00.parquet", parquet(range(2)))
    bucket.put(f"sales/orders/batch_date={D3}/0000_part_[00].parquet", parquet(range(2)))
    bucket.put(f"sales/orders/batch_date={D4}/0000_part_00.parquet", b"")
    got = outcomes(bucket.store())
    assert got[D1][0] == "refused" and "'part-00000.parquet' is named like dagspec's own parts" in got[D1][2]
    assert got[D2][0] == "refused" and "'region=eu/0000_part_00.parquet' is in a subfolder" in got[D2][2]
    assert got[None][0] == "refused" and "not batch_date=YYYY-MM-DD" in got[None][2]
    assert got[D3][0] == "refused" and "'0000_part_[00].parquet' holds a glob character" in got[D3][2]
    assert got[D4][0] == "refused" and "not a Parquet file (Parquet file size is 0 bytes)" in got[D4][2]
    assert not any(k.endswith(MANIFEST) for k in bucket.objects())


@pytest.mark.parametrize("name, ours", [
    ("part-00000.parquet", True), ("part-0123456789ab-00001.parquet", True), ("part-00000.csv", True),
    (MANIFEST, True), ("_tmp_batch_date=2024-05-01_ab12", True),
    ("0000_part_00.parquet", False), ("_SUCCESS", False), ("manifest", False), ("part-00000.parquet.bak", False),
    ("sub/part-00000.parquet", False), ("part-0123456789AB-00001.parquet", False), ("_manifest.json.old", False),
])
def test_is_ours_names_only_what_dagspec_writes(name, ours):
    assert is_ours(name) is ours


def test_the_command_adopts_and_reports(bucket):
    b = bucket
    seed_history(b)
    conn = (json.dumps({"conn_type": "fs", "extra": {"path": str(b.root)}}) if b.kind == "local" else
            b.server.connection_json(f"{'s3' if b.kind == 's3' else 'gs'}://{b.bucket}/lake"))
    env = {**os.environ, "AIRFLOW_CONN_ADOPT_STORE": conn, "COLUMNS": "200"}
    cmd = [DAGSPEC, "adopt", "--schema", "sales", "--table", "orders", "--store-conn", "adopt_store"]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    assert "would adopt 2, skipped 1, refused 2; rows 12" in dry.stdout, dry.stdout + dry.stderr
    ranged = subprocess.run([*cmd, "--from", str(D4), "--to", str(D4)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert ranged.returncode == 0 and "adopted 1, skipped 0, refused 0; rows 7" in ranged.stdout, ranged.stdout
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1  # a partition was refused
    assert "adopted 1, skipped 2, refused 2; rows 5" in done.stdout, done.stdout
    assert "commandes été 00.parquet" not in done.stderr and "Traceback" not in done.stdout + done.stderr
    assert b.kind != "s3" or b.server.secret_key not in done.stdout + done.stderr
    bad = subprocess.run([DAGSPEC, "adopt", "--schema", "_tmp", "--table", "orders", "--store-conn", "adopt_store"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "the store's own folder" in bad.stderr


@pytest.mark.parametrize("trouble", ["no hard links", "foreign file lands after the carry"])
def test_the_local_swap_keeps_foreign_files_whatever_the_file_system(tmp_path, monkeypatch, trouble):
    import dagspec.store_io as store_io

    final, new = tmp_path / "batch_date=2024-05-01", tmp_path / "new"
    (final / "sub").mkdir(parents=True)
    new.mkdir()
    foreign = {"0000_part_00.parquet": b"seed", "sub/x": b"nested", "_SUCCESS": b""}
    for name, data in foreign.items():
        (final / name).write_bytes(data)
    (final / "part-00000.parquet").write_bytes(b"old own part")
    (new / "part-00000.parquet").write_bytes(b"new own part")
    if trouble == "no hard links":
        def refuse(*_a, **_k):
            raise OSError(1, "Operation not permitted")
        monkeypatch.setattr(store_io.os, "link", refuse)
    else:
        monkeypatch.setattr(store_io, "_carry_foreign", lambda final, new: None)
    store_io.swap_in(new, final)
    assert {n: (final / n).read_bytes() for n in foreign} == foreign
    assert (final / "part-00000.parquet").read_bytes() == b"new own part" and not new.exists()
