"""`dagspec test --warehouse` on a DuckLake warehouse: each case runs in a scratch schema of the lake (its
catalog and data path), dropped after it, the definition's own tables untouched; Redshift is refused with exit 2
and the reason (BigQuery: test_transform_tests_bigquery.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import need
from test_transform_unit_tests import GOOD, case, dagspec_test, project

from dagspec.connections import env_resolver
from dagspec.warehouse import open_warehouse


def lake_schemas() -> list[str]:
    with open_warehouse(env_resolver("dagspec_warehouse")).session() as s:
        return sorted(r[0] for r in s.con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()").fetchall())


@pytest.mark.usefixtures("data_home")
def test_cases_run_in_a_scratch_schema_of_the_ducklake_and_it_is_dropped(tmp_path, monkeypatch):
    need(all(importlib.util.find_spec(f"duckdb_extension_{n}") for n in ("ducklake", "sqlite_scanner")),
         "the duckdb-extension-ducklake / -sqlite-scanner wheels")
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps({"conn_type": "ducklake", "extra": {
        "catalog": f"sqlite:{tmp_path / 'catalog.sqlite'}", "data_path": str(tmp_path / 'lake-data')}}))
    before = lake_schemas()
    project(tmp_path, monkeypatch, case(GOOD))
    result = dagspec_test("--warehouse", "-v")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    assert lake_schemas() == before  # the scratch schema is gone; 'analytics' (the target) was never made
    wrong = [{"channel": "web", "orders": 2, "revenue": "31.50"}, GOOD[1]]
    project(tmp_path / "again", monkeypatch, case(wrong))
    result = dagspec_test("--warehouse")
    assert result.exit_code == 1 and "1 with other values" in result.output
    assert lake_schemas() == before


@pytest.mark.parametrize(("kind", "why"), [("redshift", "not Redshift")])
@pytest.mark.usefixtures("data_home")
def test_warehouses_it_cannot_run_in_exit_2_with_the_reason(tmp_path, monkeypatch, kind, why):
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps({"conn_type": kind, "host": "x"}))
    project(tmp_path, monkeypatch, case(GOOD))
    result = dagspec_test("--warehouse")
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert f"warehouse 'dagspec_warehouse' is '{kind}'" in out and why in out
