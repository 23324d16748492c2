"""Sub-daily pipelines beyond staging: freshness from the newest interval's end, the Definitions page's cells and
report links, the lookback counted in intervals, `dagspec run --date` on a day a weekday-only cron never fires,
and the New York DST days through the store (23 and 25 hourly partitions). Source: the bundled sample (SQLite)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from support.subdaily import hourly, source_ids

from dagspec.freshness import check_freshness
from dagspec.lookback import gap_batches
from dagspec.partitions import PartitionKey
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
from dagspec.store import Store
from dagspec.windows import Window

DAY = datetime(2025, 3, 1, tzinfo=UTC)


def run(p: Pipeline, start: datetime, end: datetime, steps: tuple[str, ...] = ("extract_orders",)) -> None:
    for step in steps:
        run_step(p, step, start, end)


def staged_ids(home: Path, dag_id: str, key: PartitionKey) -> list[int]:
    import duckdb

    files = str(home / f"store/raw/{dag_id}_orders/{key.segment}/*.parquet")
    with duckdb.connect() as con:
        return [r[0] for r in con.execute("SELECT order_id FROM read_parquet(?) ORDER BY 1", [files]).fetchall()]


def test_freshness_ages_an_hourly_table_from_its_newest_hours_end(data_home):
    p = hourly("sdg_fresh", freshness={"max_age_hours": 1})
    run(p, DAY, DAY + timedelta(hours=3))
    (got,) = check_freshness(p, now=DAY + timedelta(hours=3, minutes=30))
    assert got.latest == PartitionKey.sub_daily(DAY + timedelta(hours=2))
    assert got.age_hours == 0.5 and not got.stale  # from 03:00, the hour's end; not from the day's end
    assert "newest partition 2025-03-01T02:00Z is 0.5 h old" in got.reason
    (later,) = check_freshness(p, now=DAY + timedelta(hours=4, minutes=30))
    assert (later.age_hours, later.stale) == (1.5, True)


def test_the_definitions_page_shows_the_newest_hour_and_links_its_report(data_home):
    from dagspec.airflow.ui import partition_cell, partition_html
    from dagspec.airflow.ui_reports import latest_reports, report_file

    p = hourly("sdg_page", timezone="America/New_York")
    start = datetime(2025, 3, 1, 5, tzinfo=UTC)  # local midnight
    run(p, start, start + timedelta(hours=3), ("extract_orders", "check_orders"))
    keys = Store(data_home / "store").partitions("raw", "sdg_page_orders")
    assert [k.display for k in keys] == ["2025-03-01T00:00-0500", "2025-03-01T01:00-0500", "2025-03-01T02:00-0500"]
    cell = partition_cell("raw.sdg_page_orders", keys, 7)
    assert partition_html(cell) == "<div>raw.sdg_page_orders: 2025-03-01T02:00-0500 (7 rows; 3 partitions on 2025-03-01)</div>"
    (report,) = latest_reports(data_home / "reports", p)
    assert (report["step"], report["batch_date"], report["passed"]) == ("check_orders", "2025-03-01T02:00-0500", True)
    assert report["href"] == "reports/sdg_page/check_orders/batch_date=2025-03-01/batch_time=0200-0500.html"
    assert report_file(data_home / "reports", report["href"].removeprefix("reports/")) is not None
    utc_keys = [PartitionKey.sub_daily(DAY + timedelta(hours=5))]
    assert partition_cell("t", utc_keys, 0)["batch_date"] == "2025-03-01T05:00Z"


def test_the_lookback_counts_intervals_and_finds_missing_and_failed_hours(data_home):
    p = hourly("sdg_look", lookback=4, start_date="2025-03-01")
    store = Store(data_home / "store")
    run(p, DAY, DAY + timedelta(hours=1))
    run(p, DAY + timedelta(hours=2), DAY + timedelta(hours=4))
    store.record_run(p.dag_id, PartitionKey.sub_daily(DAY + timedelta(hours=3)), "failed", "boom")
    own = Window(DAY + timedelta(hours=5), DAY + timedelta(hours=6))
    gaps = gap_batches(p, store, own, DAY.date(), p.lookback)
    # four hours back from 05:00: 01:00 (never staged), 03:00 (failed), 04:00 (never staged); 02:00 is loaded
    assert [(g.from_at.hour, g.to_at.hour) for g in gaps] == [(1, 2), (3, 4), (4, 5)]
    assert [g.key for g in gaps] == [PartitionKey.sub_daily(DAY + timedelta(hours=h)) for h in (1, 3, 4)]
    # start_date bounds it: 00:00 on the first day is the earliest interval there is
    first = gap_batches(p, store, Window(DAY + timedelta(hours=1), DAY + timedelta(hours=2)), DAY.date(), 4)
    assert first == []


def test_a_weekday_only_cron_on_a_saturday_is_told_so(data_home, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    defs = tmp_path / "defs"
    defs.mkdir()
    spec = hourly("sdg_weekdays", schedule="0 9-17 * * 1-5").model_dump(by_alias=True, exclude_none=True, mode="json")
    (defs / "sdg_weekdays.json").write_text(json.dumps(spec))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    monkeypatch.setenv("COLUMNS", "300")
    res = CliRunner().invoke(app, ["run", "sdg_weekdays", "--date", "2025-03-01"])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "never fires on 2025-03-01 (a Saturday)" in text and "next starts 2025-03-03 09:00" in text
    assert "empty window" not in text
    # a range over the weekend runs Friday and Monday only, each of their nine intervals
    res = CliRunner().invoke(app, ["run", "sdg_weekdays", "--date", "2025-02-28", "--to", "2025-03-03"])
    assert res.exit_code == 0, res.output
    assert "skipping 2 date(s)" in " ".join(res.output.split())
    keys = Store(data_home / "store").partitions("raw", "sdg_weekdays_orders")
    assert sorted({k.day for k in keys}) == [date(2025, 2, 28), date(2025, 3, 3)]
    assert len(keys) == 18


def test_new_york_dst_days_stage_23_and_25_hourly_partitions_with_exact_rows(data_home):
    p = hourly("sdg_dst", timezone="America/New_York")
    for day, lo, hi, count in ((date(2025, 3, 9), datetime(2025, 3, 9, 5, tzinfo=UTC),
                                datetime(2025, 3, 10, 4, tzinfo=UTC), 23),
                               (date(2025, 11, 2), datetime(2025, 11, 2, 4, tzinfo=UTC),
                                datetime(2025, 11, 3, 5, tzinfo=UTC), 25)):
        run(p, lo, hi)
        keys = [k for k in Store(data_home / "store").partitions("raw", "sdg_dst_orders") if k.day == day]
        assert len(keys) == len({k.segment for k in keys}) == count, day
        assert [k.utc_start for k in keys] == [lo + timedelta(hours=h) for h in range(count)]
        for k in keys:
            assert staged_ids(data_home, "sdg_dst", k) == source_ids(data_home, k.utc_start, k.utc_start + timedelta(hours=1))
        assert sum(len(staged_ids(data_home, "sdg_dst", k)) for k in keys) == len(source_ids(data_home, lo, hi)) > 0
    fall = sorted(k.segment.rsplit("/", 1)[1] for k in keys)
    assert "batch_time=0100-0400" in fall and "batch_time=0100-0500" in fall  # the repeated hour, twice


def test_a_local_backfill_judges_each_interval_of_a_date(data_home, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    defs = tmp_path / "defs"
    defs.mkdir()
    p = hourly("sdg_backfill", schedule="0 9-11 * * *")
    (defs / "sdg_backfill.json").write_text(json.dumps(p.model_dump(by_alias=True, exclude_none=True, mode="json")))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    monkeypatch.setenv("COLUMNS", "300")

    def backfill() -> str:
        res = CliRunner().invoke(app, ["backfill", "sdg_backfill", "--from", "2025-03-01", "--to", "2025-03-02",
                                       "--local"])
        assert res.exit_code == 0, res.output
        return " ".join(res.output.split())

    backfill()
    store = Store(data_home / "store")
    keys = store.partitions("raw", "sdg_backfill_orders")
    # 09:00 and 10:00 are an hour each; 11:00 runs to the next day's 09:00
    assert [(k.day.day, k.start.hour) for k in keys] == [(1, 9), (1, 10), (1, 11), (2, 9), (2, 10), (2, 11)]
    assert all(store.run_state(p.dag_id, k) == "success" for k in keys)
    assert "skipping 2 date(s) already loaded" in backfill()
    # one interval of the 2nd gone: that date runs again, the 1st stays as it is
    first_day = {k: store.manifest_digest("raw", "sdg_backfill_orders", k) for k in keys[:3]}
    (data_home / f"store/raw/sdg_backfill_orders/{keys[4].segment}/_manifest.json").unlink()
    out = backfill()
    assert "skipping 1 date(s) already loaded: 2025-03-01" in out and "1 date(s) done" in out
    assert store.partitions("raw", "sdg_backfill_orders") == keys
    assert {k: store.manifest_digest("raw", "sdg_backfill_orders", k) for k in keys[:3]} == first_day


def test_a_remote_backfill_asks_airflow_for_every_interval_of_the_last_date(tmp_path, monkeypatch):
    from dagspec.cli.backfill import run_bounds

    defs = tmp_path / "defs"
    defs.mkdir()
    for dag_id, schedule in (("sdg_remote", "0 9-17 * * *"), ("sdg_remote_daily", "@daily")):
        spec = hourly(dag_id, schedule=schedule, timezone="America/New_York")
        (defs / f"{dag_id}.json").write_text(json.dumps(spec.model_dump(by_alias=True, exclude_none=True, mode="json")))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    first, last = date(2025, 3, 8), date(2025, 3, 9)
    # logical dates are interval starts, inclusive: 09:00 EST on the 8th to 17:00 EDT on the 9th
    assert run_bounds("sdg_remote", first, last)[2:] == ("2025-03-08T14:00:00Z", "2025-03-09T21:00:00Z")
    assert run_bounds("sdg_remote_daily", first, last)[2:] == ("2025-03-08T05:00:00Z", "2025-03-09T05:00:00Z")


def test_the_stale_alert_of_an_hourly_table_is_keyed_by_its_newest_hour(data_home, smtp, hook, monkeypatch):
    from dagspec.freshness_alerts import run_freshness_check

    monkeypatch.setenv("AIRFLOW_CONN_RUN_MAIL", f"smtp://127.0.0.1:{smtp.port}/?from_email=dagspec%40example.com")
    p = hourly("sdg_stale", freshness={"max_age_hours": 1},
               alerts={"email": ["data@example.com"], "smtp_conn_id": "run_mail", "on": ["stale"]})
    run(p, DAY, DAY + timedelta(hours=1))
    at = DAY + timedelta(hours=3)  # 00:00's data ended at 01:00: 2 h old
    assert run_freshness_check(p, now=at).alerted == ["raw.sdg_stale_orders"]
    assert run_freshness_check(p, now=at + timedelta(minutes=10)).alerted == []  # same hour, said once
    run(p, DAY + timedelta(hours=1), DAY + timedelta(hours=2))  # a newer hour, still too old: said again
    assert run_freshness_check(p, now=at + timedelta(minutes=20)).alerted == ["raw.sdg_stale_orders"]
    bodies = [m.get_content() for _, m in smtp.messages]
    assert len(bodies) == 2 and "newest partition 2025-03-01T01:00Z is 1.3 h old" in bodies[1]
