"""`dagspec test --warehouse` on a BigQuery warehouse (the local-bigquery emulator): each case runs in a scratch
dataset made for it and deleted after it, passed or failed; the definition's own datasets are never made."""

from __future__ import annotations

import json

import pytest
from test_transform_unit_tests import GOOD, case, dagspec_test, project


def datasets(client) -> set[str]:
    return {d.dataset_id for d in client.list_datasets()}


@pytest.mark.usefixtures("data_home")
def test_cases_run_in_a_scratch_dataset_of_bigquery_and_it_is_deleted(tmp_path, monkeypatch, bq, bigquery_server):
    client, _ = bq
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "endpoint": bigquery_server["endpoint"], "project": bigquery_server["project"]}}))
    before = datasets(client) - {"_dagspec_scratch"}
    project(tmp_path, monkeypatch, case(GOOD))
    result = dagspec_test("--warehouse", "-v")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    # The SQL ran as BigQuery got it: the given rows are a table loaded into the session's scratch dataset.
    assert f"FROM `{bigquery_server['project']}._dagspec_scratch.ref_extract_orders_" in result.output
    assert datasets(client) - {"_dagspec_scratch"} == before  # no scratch dataset left, 'analytics' never made

    wrong = [{"channel": "web", "orders": 2, "revenue": "31.50"}, GOOD[1]]
    project(tmp_path / "again", monkeypatch, case(wrong))
    result = dagspec_test("--warehouse")
    assert result.exit_code == 1, result.output
    assert "1 with other values" in result.output and "0 passed, 1 failed" in result.output
    assert datasets(client) - {"_dagspec_scratch"} == before
