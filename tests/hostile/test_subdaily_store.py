"""Hostile input at a sub-daily grain: `batch_time=` folders dagspec did not write are never read as partitions
(no manifest, a name that is no key, an impossible time or offset), survive a re-run of the hour they look like
byte for byte, and never reach a reader; an every-minute schedule is a valid pipeline (1440 partitions a day) and
a six-field (seconds) cron is refused saying why."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from support.subdaily import hourly

from dagspec.freshness import check_freshness
from dagspec.partitions import PartitionKey
from dagspec.runner import run_step, window_of_day
from dagspec.spec.model import Pipeline
from dagspec.store import Store

DAY = datetime(2025, 3, 1, tzinfo=UTC)
FOREIGN = ["batch_time=0100", "batch_time=2400", "batch_time=0160", "batch_time=0100+1900", "batch_time=01000",
           "batch_time=0100-0400x", "batch_time=../0100", "batch_time=", "batch_time=01:00"]


def test_foreign_batch_time_folders_are_not_ours(data_home):
    p = hourly("sdh_foreign", freshness={"max_age_hours": 1})
    day = data_home / "store/raw/sdh_foreign_orders/batch_date=2025-03-01"
    for name in FOREIGN:
        folder = day / name
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"order_id": [-1]}), folder / "data.parquet")
        (folder / "_SUCCESS").write_bytes(b"")
    for name in FOREIGN[1:]:  # named like no key: not a partition even with our manifest's name in it
        if (day / name).is_dir() and "/" not in name:
            (day / name / "_manifest.json").write_text('{"rows": 1}')
    store = Store(data_home / "store")
    assert store.partitions("raw", "sdh_foreign_orders") == []
    assert check_freshness(p, now=DAY)[0].reason == "no staged partition"
    before = {f: f.read_bytes() for f in day.rglob("*") if f.is_file()}
    run_step(p, "extract_orders", DAY + timedelta(hours=1), DAY + timedelta(hours=2))
    key = PartitionKey.sub_daily(DAY + timedelta(hours=1))
    assert store.partitions("raw", "sdh_foreign_orders") == [key]
    # the foreign files stay byte for byte, and the reader sees only the parts the manifest names
    assert {f: f.read_bytes() for f in before} == before
    ids = store.dataset("raw", "sdh_foreign_orders", [key]).to_table().column("order_id").to_pylist()
    assert ids and -1 not in ids


def test_an_every_minute_schedule_is_a_pipeline_of_1440_partitions_a_day(data_home):
    p = hourly("sdh_minute", schedule="* * * * *")
    window = window_of_day(p, date(2025, 3, 1))
    assert (window.start, window.end) == (DAY, DAY + timedelta(days=1))
    batches = p.batches_of(window)
    assert len(batches) == len({b.key for b in batches}) == 1440
    assert all(b.to_at - b.from_at == timedelta(minutes=1) for b in batches)
    assert batches[61].key.segment == "batch_date=2025-03-01/batch_time=0101"


@pytest.mark.parametrize("schedule, says", [
    ("* * * * * *", "five fields"),
    ("*/5 * * * *; DROP TABLE x", "not a valid cron"),
    ("@every 5m", "unknown preset"),
])
def test_a_schedule_dagspec_cannot_cut_is_refused_with_a_reason(schedule, says):
    with pytest.raises(ValidationError, match=says):
        Pipeline.model_validate({"dag_id": "x", "schedule": schedule, "start_date": "2025-03-01", "steps": [
            {"id": "e", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
             "target": {"schema": "raw", "table": "o"}}]})
