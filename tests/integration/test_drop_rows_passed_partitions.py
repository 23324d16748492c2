"""The `<table>__passed` partitions a drop_rows check writes to the store are store tables like the extract's:
freshness and backfill see them, and the passing rows keep the staged batch's Arrow types (a dictionary
column stays one: DuckDB, which selects the rows, hands it back as plain strings)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dagspec.freshness import check_freshness
from dagspec.plan import plan_of
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec.model import Pipeline
from dagspec.store import Store

pytestmark = pytest.mark.service
DAY = date(2025, 3, 1)


def definition(path: str) -> Pipeline:
    return Pipeline.model_validate({
        "dag_id": "t_passed_dict", "start_date": "2025-03-01", "freshness": {"max_age_hours": 48},
        "steps": [
            {"id": "events", "kind": "extract", "target": {"schema": "raw", "table": "events"},
             "source": {"kind": "objects", "conn_id": "landing", "format": "parquet", "path": path}},
            {"id": "check", "kind": "validate", "input": "events", "on_fail": "drop_rows",
             "quarantine": {"schema": "quarantine", "table": "events"},
             "expectations": [{"type": "expect_column_values_to_be_between",
                               "kwargs": {"column": "amount", "min_value": 0}}]}]})


def test_passing_rows_keep_a_dictionary_column_and_are_a_store_table(data_home, s3_server, monkeypatch):
    bucket = s3_server.make_bucket("passed-dict")
    kinds = pa.array(["web", "shop", "web", "app"]).dictionary_encode()
    body = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "kind": kinds, "amount": [1.0, -2.0, 3.0, 4.0]}), body)
    s3_server.client().put_object(Bucket=bucket, Key=f"events/{DAY}/part-0.parquet", Body=body.getvalue())
    monkeypatch.setenv("AIRFLOW_CONN_LANDING", s3_server.connection_json())
    pipeline = definition(f"s3://{bucket}/events/{{{{ ds }}}}/*.parquet")

    assert plan_of(pipeline).store_tables() == [("raw", "events"), ("raw", "events__passed")]
    run_pipeline(pipeline, window_of_day(pipeline, DAY))

    store = Store(data_home / "store")
    staged = store.dataset("raw", "events", [DAY]).schema
    passed = store.dataset("raw", "events__passed", [DAY]).to_table()
    assert pa.types.is_dictionary(staged.field("kind").type)
    assert passed.schema.field("kind").type == staged.field("kind").type
    assert sorted(passed.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "kind": "web", "amount": 1.0}, {"id": 3, "kind": "web", "amount": 3.0},
        {"id": 4, "kind": "app", "amount": 4.0}]
    # Freshness names the passing rows' table too, with its own row count.
    now = datetime(2025, 3, 2, 12, tzinfo=UTC)
    seen = {f.table: f.rows for f in check_freshness(pipeline, now=now)}
    assert seen == {"raw.events": 4, "raw.events__passed": 3}
