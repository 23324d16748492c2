"""Fixtures of the BigQuery tests: one local-bigquery emulator for the session, and connections to it per test."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import need

from support.bigquery_emulator import client, ensure, running


@pytest.fixture(scope="session")
def bigquery_server(tmp_path_factory):
    """One local-bigquery for the session (built on first use); yields its endpoints."""
    try:
        ensure()
    except Exception as exc:  # no Python 3.13, no package index: skip locally, fail in CI
        need(False, f"local-bigquery emulator could not be set up: {exc}")
    with running(tmp_path_factory.mktemp("bigquery")) as info:
        yield info


@pytest.fixture()
def bq(bigquery_server, monkeypatch):
    """The emulator as both `dagspec_warehouse` and `bq`; yields (client, a fresh dataset-name prefix)."""
    conn = json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "endpoint": bigquery_server["endpoint"], "project": bigquery_server["project"]}})
    monkeypatch.setenv("AIRFLOW_CONN_BQ", conn)
    monkeypatch.setenv("AIRFLOW_CONN_BQ_STORAGE", json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "endpoint": bigquery_server["endpoint"], "grpc_endpoint": bigquery_server["grpc"],
        "project": bigquery_server["project"]}}))
    prefix = f"t{uuid.uuid4().hex[:8]}"
    bq_client = client(bigquery_server["endpoint"])
    yield bq_client, prefix
    for ds in bq_client.list_datasets():
        if ds.dataset_id.startswith(prefix):
            bq_client.delete_dataset(ds.dataset_id, delete_contents=True, not_found_ok=True)
