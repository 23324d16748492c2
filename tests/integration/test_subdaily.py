"""Sub-daily pipelines against a real PostgreSQL source, published to DuckDB and to PostgreSQL: one partition
per schedule interval (batch_date=D/batch_time=HHMM), exact [from, to) rows, and a re-run of one hour that
replaces only that hour, in the store and in both warehouses. Daily pipelines still write the bytes main does.

The module creates its own database (ds_subdaily_<pid>) and drops it at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.expected import warehouse_rows
from support.pg_databases import conn_json, scratch_database
from support.runtime_conditions import pg_admin

from dagspec.runner import run_step
from dagspec.spec.model import Pipeline

DB = f"ds_subdaily_{os.getpid()}"
DAY = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg_events():
    with scratch_database(DB):
        with pg_admin(DB) as c:
            c.execute("CREATE TABLE events (event_id int PRIMARY KEY, amount numeric(10,2) NOT NULL, "
                      "at timestamptz NOT NULL)")
            # one row every 7 minutes over two days: uneven counts per hour and per 5 minutes, rows on the bounds
            rows = [(i, f"{i % 97}.{i % 100:02d}", DAY + timedelta(minutes=7 * i)) for i in range(2 * 24 * 60 // 7)]
            with c.cursor() as cur:
                cur.executemany("INSERT INTO events VALUES (%s, %s, %s)", rows)
        yield conn_json(DB)


@pytest.fixture()
def home(data_home, pg_events, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SD_PG", pg_events)
    return data_home


def pipeline(dag_id: str, schedule: str, warehouse: str = "dagspec_warehouse", query: bool = False) -> Pipeline:
    source = ({"conn_id": "sd_pg", "query": "SELECT * FROM events WHERE at >= :from_date AND at < :to_date "
               "ORDER BY event_id"} if query else {"conn_id": "sd_pg", "table": "events", "incremental_column": "at"})
    return Pipeline.model_validate({
        "dag_id": dag_id, "schedule": schedule, "start_date": "2025-03-01", "warehouse": {"conn_id": warehouse},
        "steps": [
            {"id": "extract_events", "kind": "extract", "source": source,
             "target": {"schema": "raw", "table": f"{dag_id}_events"}},
            {"id": "check_events", "kind": "validate", "input": "extract_events",
             "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "event_id"}}]},
            {"id": "publish_events", "kind": "publish", "input": "extract_events",
             "table": {"schema": "analytics", "table": f"{dag_id}_events"}},
        ],
    })


def run(p: Pipeline, start: datetime, end: datetime) -> None:
    for step in p.steps:
        run_step(p, step.id, start, end)


def source_ids(lo: datetime, hi: datetime) -> list[int]:
    with pg_admin(DB) as c:
        return [r[0] for r in c.execute("SELECT event_id FROM events WHERE at >= %s AND at < %s ORDER BY 1", (lo, hi))]


def staged_ids(home: Path, dag_id: str, segment: str) -> list[int]:
    files = str(home / f"store/raw/{dag_id}_events/{segment}/*.parquet")
    return [r[0] for r in warehouse_rows(home / "warehouse.duckdb", "SELECT event_id FROM read_parquet(?) ORDER BY 1",
                                         [files])]


def hours(n: int, first: int = 0) -> list[tuple[datetime, datetime]]:
    return [(DAY + timedelta(hours=h), DAY + timedelta(hours=h + 1)) for h in range(first, first + n)]


def test_an_hourly_pipeline_stages_and_publishes_each_hour_and_a_rerun_replaces_only_its_hour(home):
    p = pipeline("sd_hourly", "@hourly")
    run(p, DAY, DAY + timedelta(hours=3))
    folder = home / "store/raw/sd_hourly_events/batch_date=2025-03-01"
    assert sorted(x.name for x in folder.iterdir()) == ["batch_time=0000", "batch_time=0100", "batch_time=0200"]
    for lo, hi in hours(3):
        assert staged_ids(home, "sd_hourly", f"batch_date=2025-03-01/batch_time={lo:%H}00") == source_ids(lo, hi)
    manifest = json.loads((folder / "batch_time=0100/_manifest.json").read_text())
    assert manifest["batch_start"] == "2025-03-01T01:00:00+00:00"
    assert manifest["window"] == ["2025-03-01T01:00:00+00:00", "2025-03-01T02:00:00+00:00"]

    def published() -> list[tuple]:
        return warehouse_rows(home / "warehouse.duckdb", "SELECT batch_date, batch_start, count(*), min(event_id) "
                              "FROM analytics.sd_hourly_events GROUP BY 1, 2 ORDER BY 2")

    expected = [(date(2025, 3, 1), lo.replace(tzinfo=None), len(source_ids(lo, hi)), source_ids(lo, hi)[0])
                for lo, hi in hours(3)]
    assert published() == expected
    # The source changes inside hour 1 only; re-running hour 1 must leave hours 0 and 2 alone.
    lo, hi = hours(1, first=1)[0]
    gone = source_ids(lo, hi)[0]
    with pg_admin(DB) as c:
        row = c.execute("SELECT * FROM events WHERE event_id = %s", (gone,)).fetchone()
        c.execute("DELETE FROM events WHERE event_id = %s", (gone,))
    others = {s: (folder / s / "_manifest.json").read_bytes() for s in ("batch_time=0000", "batch_time=0200")}
    run(p, lo, hi)
    assert staged_ids(home, "sd_hourly", "batch_date=2025-03-01/batch_time=0100") == source_ids(lo, hi)
    assert {s: (folder / s / "_manifest.json").read_bytes() for s in others} == others
    expected[1] = (date(2025, 3, 1), lo.replace(tzinfo=None), len(source_ids(lo, hi)), source_ids(lo, hi)[0])
    assert published() == expected
    # A run cut at another grain over the same hours is the overlap guard's to refuse.
    daily = pipeline("sd_hourly", "@daily")
    with pytest.raises(Exception, match="overlaps the staged partition .*batch_time=0000"):
        run_step(daily, "extract_events", DAY, DAY + timedelta(days=1))
    with pg_admin(DB) as c:  # the module's other tests read the source as it was
        c.execute("INSERT INTO events VALUES (%s, %s, %s)", row)


def test_a_five_minute_pipeline_publishes_to_postgresql_at_its_grain(home, monkeypatch, pg_events):
    monkeypatch.setenv("AIRFLOW_CONN_SD_WH", pg_events)
    p = pipeline("sd_five", "*/5 * * * *", warehouse="sd_wh")
    start = DAY + timedelta(hours=5)
    run(p, start, start + timedelta(minutes=30))
    folder = home / "store/raw/sd_five_events/batch_date=2025-03-01"
    assert [x.name for x in sorted(folder.iterdir())] == [f"batch_time=05{m:02d}" for m in range(0, 30, 5)]
    with pg_admin(DB) as c:
        got = c.execute("SELECT batch_start, count(*) FROM analytics.sd_five_events GROUP BY 1 ORDER BY 1").fetchall()
    fives = [(start + timedelta(minutes=m), start + timedelta(minutes=m + 5)) for m in range(0, 30, 5)]
    want = [(lo.replace(tzinfo=None), len(source_ids(lo, hi))) for lo, hi in fives if source_ids(lo, hi)]
    assert got == want
    # re-run one 5-minute interval: the other five keep their rows
    run(p, *fives[2])
    with pg_admin(DB) as c:
        assert c.execute("SELECT batch_start, count(*) FROM analytics.sd_five_events GROUP BY 1 ORDER BY 1"
                         ).fetchall() == want


DAILY_SCRIPT = """
import json, sys
from datetime import datetime, UTC
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
p = Pipeline.model_validate(json.loads(sys.argv[1]))
run_step(p, "extract_events", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
"""


# The daily partition's files as dagspec wrote them before sub-daily partitions existed (main at 22bcac4, the
# same script and definition): daily pipelines keep that layout byte for byte.
BEFORE_SUBDAILY = {"_manifest.json": "c33437a5491116cbc6ef91b81c71b2bb439e7c981a8281e244503d8b9066d3eb",
                   "part-00000.parquet": "76c0fd1ef048f8531107cf57d475a31b990ffb3240e684b02222d6d33286d0e2"}


def test_a_daily_pipeline_writes_the_same_bytes_as_before_sub_daily(home, tmp_path):
    import hashlib

    definition = pipeline("sd_daily", "@daily", query=True).model_dump(mode="json", by_alias=True, exclude_none=True,
                                                                      exclude_unset=True)
    store = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "include"), "AIRFLOW_CONN_DAGSPEC_STORE":
           json.dumps({"conn_type": "fs", "extra": {"path": str(store)}})}
    res = subprocess.run([sys.executable, "-c", DAILY_SCRIPT, json.dumps(definition)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    part = store / "raw/sd_daily_events/batch_date=2025-03-01"
    assert {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in part.iterdir()} == BEFORE_SUBDAILY
