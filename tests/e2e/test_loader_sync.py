"""Remote drops against real protocols: moto's S3 server and the GCS emulator (tests/support/object_stores.py).

Only new or changed objects come in, each validated first; an invalid one never replaces a good one;
a definition deleted remotely is deleted locally; local-only definitions are never touched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "tests" / "definitions" / "good"
BAD = ROOT / "tests" / "definitions" / "bad"
SQL = ROOT / "include" / "sql"


def definition(dag_id: str, **changes) -> bytes:
    data = json.loads((GOOD / "minimal.json").read_text())
    # Each its own staged table: two definitions writing one table are refused (spec/folder.py).
    data["steps"][0]["target"]["table"] = re.sub(r"[^A-Za-z0-9_]", "_", dag_id)
    data.update(dag_id=dag_id, **changes)
    return json.dumps(data, indent=2).encode()


class Bucket:
    """A fresh prefix on one of the two servers, written through the server's own client library."""

    def __init__(self, kind: str, server, monkeypatch):
        self.kind = kind
        self.server = server
        self.bucket = server.make_bucket("drops")
        self.scheme = "s3" if kind == "s3" else "gs"
        self.uri = f"{self.scheme}://{self.bucket}/definitions"
        self.conn_id = f"drops_{kind}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{self.conn_id.upper()}", server.connection_json())

    def put(self, name: str, raw: bytes) -> None:
        key = f"definitions/{name}"
        if self.kind == "s3":
            self.server.client().put_object(Bucket=self.bucket, Key=key, Body=raw)
        else:
            self.server.client().bucket(self.bucket).blob(key).upload_from_string(raw)

    def delete(self, name: str) -> None:
        key = f"definitions/{name}"
        if self.kind == "s3":
            self.server.client().delete_object(Bucket=self.bucket, Key=key)
        else:
            self.server.client().bucket(self.bucket).blob(key).delete()


@pytest.fixture(params=["s3", "gcs"])
def bucket(request, monkeypatch) -> Bucket:
    server = request.getfixturevalue("s3_server" if request.param == "s3" else "gcs_server")
    return Bucket(request.param, server, monkeypatch)


def run(bucket: Bucket, target: Path):
    from dagspec.sync import sync

    return sync(bucket.uri, bucket.conn_id, target, sql_dir=SQL)


def test_sync_brings_valid_drops_keeps_good_ones_and_follows_deletes(bucket, tmp_path):
    target = tmp_path / "definitions"
    target.mkdir()
    local_only = definition("local_only")
    (target / "local_only.json").write_bytes(local_only)

    bucket.put("alpha.json", definition("alpha"))
    bucket.put("beta.json", definition("beta"))
    bucket.put("broken.json", (BAD / "unknown_key_top.json").read_bytes())
    bucket.put("nested/in_a_bundle.json", definition("nested"))  # a sub-folder is a bundle (tests/e2e/test_bundles.py)
    bucket.put("notes.txt", b"not a definition")
    first = run(bucket, target)
    assert (sorted(first.added), sorted(first.rejected)) == (["alpha.json", "beta.json", "nested/"], ["broken.json"])
    assert [str(p) for p in first.rejected["broken.json"]] == [
        "definitions/broken.json: $.schedul: unknown key 'schedul' (fix: did you mean 'schedule'?)"]
    assert sorted(p.name for p in target.glob("*.json")) == ["alpha.json", "beta.json", "local_only.json"]
    assert json.loads((target / "alpha.json").read_text())["dag_id"] == "alpha"

    # Nothing changed remotely: nothing is downloaded or rewritten.
    before = {p.name: p.stat().st_mtime_ns for p in target.glob("*.json")}
    again = run(bucket, target)
    assert (again.added, again.updated, again.deleted) == ([], [], [])
    assert sorted(again.unchanged) == ["alpha.json", "beta.json", "nested/"]
    assert {p.name: p.stat().st_mtime_ns for p in target.glob("*.json")} == before

    # alpha changes (valid), beta turns invalid, a newcomer steals local_only's dag_id, broken gets fixed.
    good_beta = (target / "beta.json").read_bytes()
    bucket.put("alpha.json", definition("alpha", tags=["v2"]))
    bucket.put("beta.json", definition("beta", schedule="@hourly", batch_days=2))
    bucket.put("thief.json", definition("local_only"))
    bucket.put("broken.json", definition("fixed"))
    second = run(bucket, target)
    assert second.updated == ["alpha.json"] and second.added == ["broken.json"]
    assert sorted(second.rejected) == ["beta.json", "thief.json"]
    assert "runs more than once a day" in second.rejected["beta.json"][0].message
    assert "already used by definitions/local_only.json" in second.rejected["thief.json"][0].message
    assert json.loads((target / "alpha.json").read_text())["tags"] == ["v2"]
    assert (target / "beta.json").read_bytes() == good_beta  # the good version stays live
    assert not (target / "thief.json").exists()

    # Deleted remotely -> deleted locally; the local-only file is never touched.
    bucket.delete("alpha.json")
    bucket.delete("broken.json")
    third = run(bucket, target)
    assert sorted(third.deleted) == ["alpha.json", "broken.json"]
    assert sorted(p.name for p in target.glob("*.json")) == ["beta.json", "local_only.json"]
    assert (target / "local_only.json").read_bytes() == local_only


def test_a_definition_renamed_remotely_moves_in_one_pass(bucket, tmp_path):
    target = tmp_path / "definitions"
    bucket.put("orders_v1.json", definition("orders"))
    assert run(bucket, target).added == ["orders_v1.json"]
    bucket.delete("orders_v1.json")
    bucket.put("orders.json", definition("orders", tags=["renamed"]))
    moved = run(bucket, target)
    assert (moved.added, moved.deleted, moved.rejected) == (["orders.json"], ["orders_v1.json"], {})
    assert [p.name for p in target.glob("*.json")] == ["orders.json"]
    assert json.loads((target / "orders.json").read_text())["tags"] == ["renamed"]


def test_missing_prefix_deletes_nothing_and_wrong_scheme_is_refused(bucket, tmp_path):
    from dagspec.sync import sync

    target = tmp_path / "definitions"
    bucket.put("alpha.json", definition("alpha"))
    assert run(bucket, target).added == ["alpha.json"]
    other = "gs" if bucket.scheme == "s3" else "s3"
    with pytest.raises(ValueError, match="connection"):
        sync(f"{other}://{bucket.bucket}/definitions", bucket.conn_id, target)
    assert (target / "alpha.json").exists()


def test_cli_sync_prints_changes_and_rejections(s3_server, tmp_path, monkeypatch):
    b = Bucket("s3", s3_server, monkeypatch)
    b.put("alpha.json", definition("alpha"))
    b.put("broken.json", b"{")
    target = tmp_path / "definitions"
    res = subprocess.run([str(Path(sys.executable).with_name("dagspec")), "sync", b.uri, "--conn-id", b.conn_id,
                          "--to", str(target)], capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "added: alpha.json",
        "rejected: definitions/broken.json: line 1, column 2: invalid JSON: Expecting property name enclosed in "
        "double quotes (fix: fix the JSON syntax)",
    ]
    assert "1 added, 0 updated, 0 deleted, 0 unchanged, 1 rejected" in res.stderr
    assert "testing-secret" not in res.stdout + res.stderr


def test_sync_dag_brings_a_drop_that_the_loader_then_builds(airflow_db, dags_folder, s3_server, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    b = Bucket("s3", s3_server, monkeypatch)
    b.put("from_s3.json", definition("from_s3"))
    monkeypatch.setenv("DAGSPEC_SYNC_URI", b.uri)
    monkeypatch.setenv("DAGSPEC_SYNC_CONN_ID", b.conn_id)
    shutil.copy(ROOT / "dags" / "dagspec_sync.py", dags_folder / "dagspec_sync.py")
    bag = DagBag(dag_folder=str(dags_folder))
    assert "dagspec_sync" in bag.dags and "from_s3" not in bag.dags
    run = bag.dags["dagspec_sync"].test()
    assert str(run.state) == "success"
    assert "from_s3" in DagBag(dag_folder=str(dags_folder)).dags
