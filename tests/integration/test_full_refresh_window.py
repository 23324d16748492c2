"""A full-refresh pipeline run over a month stages one snapshot (the window's last date), not 31 copies."""

from __future__ import annotations

from datetime import date

from dagspec.connections import env_resolver
from dagspec.paths import definitions_dir
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec.discovery import find_definition
from dagspec.stages.full_refresh import reads_no_window
from dagspec.windows import Window


def _month(pipeline) -> Window:
    return Window(window_of_day(pipeline, date(2025, 1, 1)).start, window_of_day(pipeline, date(2025, 1, 31)).end)


def test_a_month_of_a_snapshot_pipeline_is_one_partition(data_home):
    pipeline = find_definition(definitions_dir(), "customers_snapshot")[1]
    results = run_pipeline(pipeline, _month(pipeline), resolver=env_resolver)
    assert list(results["extract_customers"]) == ["2025-01-31"]
    assert results["extract_customers"]["2025-01-31"] == 5000
    staged = sorted(p.name for p in (data_home / "store" / "raw" / "customers").iterdir())
    assert staged == ["batch_date=2025-01-31"]


def test_a_windowed_query_or_incremental_column_is_not_a_snapshot():
    pipeline = find_definition(definitions_dir(), "orders_daily")[1]
    extract = pipeline.step("extract_orders")
    assert not reads_no_window(extract)
    windowed = extract.model_copy(update={"source": extract.source.model_copy(update={
        "incremental_column": None, "table": None, "query": "SELECT * FROM orders WHERE ordered_at >= :from_date"})})
    assert not reads_no_window(windowed)
    whole = extract.model_copy(update={"source": extract.source.model_copy(update={"incremental_column": None})})
    assert reads_no_window(whole)
