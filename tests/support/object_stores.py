"""Real object-store protocols on loopback for tests: moto's S3 server and gcp-storage-emulator.

Fixtures of every test module (registered in tests/conftest.py):

    def test_x(s3_server):
        bucket = s3_server.make_bucket()                 # a fresh, uniquely named bucket
        fs = s3_server.filesystem()                      # pyarrow S3FileSystem on the server
        os.environ["AIRFLOW_CONN_X"] = s3_server.connection_json(f"s3://{bucket}/data")

Each server runs in its own child process, started once per test session on a port the OS
picks. A child process rather than a thread: gcp-storage-emulator is a single-threaded Python
HTTP server, and pyarrow's GCS client blocks in C++ while holding the GIL on some calls
(open_input_file().size()), which deadlocks against an emulator in the same interpreter. It also
keeps the servers' Python work off the test's GIL. The child exits when its stdin closes, so
a killed pytest never leaves a server behind.

Without moto or the emulator installed the fixtures skip locally and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import need

_CHILD = {
    "s3": """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
""",
    "gcs": """
import logging, sys
logging.disable(logging.INFO)  # the emulator logs every request at INFO
from gcp_storage_emulator.server import create_server
server = create_server("127.0.0.1", 0, in_memory=True)
server.start()
print(server._api._httpd.server_port, flush=True)
sys.stdin.read()
server.stop()
""",
}

class _Child:
    def __init__(self, kind: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD[kind]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the {kind} test server did not start (exit code {self.proc.poll()})")
        self.port = int(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str = "testing"
    secret_key: str = "testing-secret"
    region: str = "us-east-1"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name=self.region)

    def make_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        self.client().create_bucket(Bucket=name)
        return name

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(access_key=self.access_key, secret_key=self.secret_key, region=self.region,
                                 endpoint_override=self.endpoint_url.split("://", 1)[1], scheme="http")

    def connection(self, path: str | None = None, **extra: Any) -> dict[str, Any]:
        """An Airflow `aws` connection (JSON form) for this server; `path` is the store root, if any."""
        extra = {"endpoint_url": self.endpoint_url, "region_name": self.region, **extra}
        if path:
            extra["path"] = path
        return {"conn_type": "aws", "login": self.access_key, "password": self.secret_key, "extra": extra}

    def connection_json(self, path: str | None = None, **extra: Any) -> str:
        """For AIRFLOW_CONN_<ID>."""
        return json.dumps(self.connection(path, **extra))


@dataclass
class GcsServer:
    endpoint: str  # http://127.0.0.1:<port>
    project: str = "test-project"

    def client(self):
        """A google-cloud-storage client on the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=self.project, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.endpoint})

    def make_bucket(self, prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}".lower()
        self.client().create_bucket(name)
        return name

    def filesystem(self):
        import pyarrow.fs as pafs

        return pafs.GcsFileSystem(anonymous=True, endpoint_override=self.endpoint.split("://", 1)[1], scheme="http")

    def connection(self, path: str | None = None, **extra: Any) -> dict[str, Any]:
        """An Airflow `google_cloud_platform` connection (JSON form) for this emulator."""
        extra = {"endpoint": self.endpoint, "project": self.project, **extra}
        if path:
            extra["path"] = path
        return {"conn_type": "google_cloud_platform", "extra": extra}

    def connection_json(self, path: str | None = None, **extra: Any) -> str:
        return json.dumps(self.connection(path, **extra))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto in server mode on 127.0.0.1 (real S3 protocol over HTTP), one per test session."""
    need(_importable("moto.server") and _importable("boto3"), "moto[server] and boto3 are not installed")
    child = _Child("s3")
    try:
        yield S3Server(f"http://127.0.0.1:{child.port}")
    finally:
        child.stop()


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    """gcp-storage-emulator on 127.0.0.1, one per test session. Sets STORAGE_EMULATOR_HOST for
    google-cloud-storage clients made without an explicit endpoint.

    The emulator answers the JSON API (objects get/list by prefix, resumable uploads, ranged
    downloads) but has no HEAD and no delimiter ("directory") listing: list recursively by prefix.
    """
    need(_importable("gcp_storage_emulator.server") and _importable("google.cloud.storage"),
         "gcp-storage-emulator and google-cloud-storage are not installed")
    child = _Child("gcs")
    try:
        server = GcsServer(f"http://127.0.0.1:{child.port}")
        os.environ["STORAGE_EMULATOR_HOST"] = server.endpoint
        yield server
    finally:
        child.stop()
