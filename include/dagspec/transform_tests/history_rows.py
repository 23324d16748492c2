"""A transform test's rows for a history input: the published table as the case gives it, with its batch_date
column, cut to the batch_dates the run would read (spec/history_inputs.py), so a case checks `days` too."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from dagspec.errors import StepFailed
from dagspec.spec.history_inputs import HistoryInput
from dagspec.windows import Batch


def history_rows(given: pa.Table, entry: HistoryInput, batch: Batch) -> pa.Table:
    if "batch_date" not in given.column_names:
        raise StepFailed(f"the given rows of history {entry.name!r} have no batch_date column: give each row the "
                         "batch_date it was published as (\"columns\": {\"batch_date\": \"date\"})")
    dates = given.column("batch_date")
    if not pa.types.is_date(dates.type):
        raise StepFailed(f"the batch_date column of history {entry.name!r} is {dates.type}; declare it "
                         "\"columns\": {\"batch_date\": \"date\"}")
    keep = pc.less_equal(dates, pa.scalar(batch.batch_date, dates.type))
    if entry.days is not None:
        first = pa.scalar(batch.batch_date - timedelta(days=entry.days), dates.type)
        keep = pc.and_(keep, pc.greater_equal(dates, first))
    return given.filter(keep)
