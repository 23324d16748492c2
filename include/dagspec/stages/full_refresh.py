"""Full-refresh pipelines in a window of many partitions: one snapshot, not one copy per day.

An extract that reads no window (a SQL table without `incremental_column`, a query that binds no window and is
not templated, a Google Sheet) returns the same rows for every batch of a run, so a `@monthly` run (or a
backfill chunk) staging one per day would keep 31 identical copies. When every extract of a pipeline is such a
snapshot, a window of several partitions runs only its last one: the source as it stands at the window's end,
which is what the daily run of that last date stages. Earlier dates of the window get no partition of their
own, just as a `publish` with `"mode": "snapshot"` keeps only the newest. A pipeline that also reads a window
(an incremental extract beside a lookup table) keeps one partition per batch, for its joins.
"""

from __future__ import annotations

from dagspec.spec.model import ExtractStep, Pipeline
from dagspec.spec.sources import SheetSource, SqlSource
from dagspec.windows import Batch

WINDOW_MARKERS = (":from_date", ":to_date", ":batch_date", "{{", "{%")


def reads_no_window(step: ExtractStep) -> bool:
    source = step.source
    if isinstance(source, SheetSource):
        return True
    if not isinstance(source, SqlSource) or source.incremental_column:
        return False
    return source.query is None or not any(m in source.query for m in WINDOW_MARKERS)


def snapshot_batches(pipeline: Pipeline, batches: list[Batch]) -> list[Batch]:
    """`batches`, or only the last one when every extract of the pipeline is a full refresh."""
    extracts = [s for s in pipeline.steps if isinstance(s, ExtractStep)]
    if len(batches) > 1 and extracts and all(reads_no_window(s) for s in extracts):
        return batches[-1:]
    return batches
