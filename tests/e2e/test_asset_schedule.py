"""A definition scheduled on another definition's output (an Airflow Asset) in real Airflow: the upstream
publish emits the Asset event with its window, the downstream DAG is queued, and its run processes that window."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from support.expected import expected_revenue, warehouse_rows

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
REVENUE_URI = "dagspec-warehouse://dagspec_warehouse/analytics/daily_revenue"

SHARE_SQL = """\
-- Each channel's share of one day's net revenue, read from the upstream pipeline's published table.
SELECT channel, net_revenue, net_revenue / sum(net_revenue) OVER () AS share
FROM analytics.daily_revenue
WHERE batch_date >= CAST(:from_date AS DATE) AND batch_date < CAST(:to_date AS DATE)
"""


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.fixture()
def downstream(dags_folder, tmp_path, monkeypatch) -> Path:
    sql = tmp_path / "sql"
    shutil.copytree(ROOT / "include" / "sql", sql)
    (sql / "orders" / "channel_share.sql").write_text(SHARE_SQL)
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql))
    definition = dags_folder / "definitions" / "channel_share.json"
    definition.write_text(json.dumps({
        "dag_id": "channel_share", "schedule": None, "start_date": "2025-01-01",
        "schedule_assets": [REVENUE_URI],
        "steps": [{"id": "share", "kind": "transform", "sql": "orders/channel_share.sql",
                   "target": {"schema": "analytics", "table": "channel_share"}}],
    }))
    return definition


def test_a_definition_runs_on_the_window_of_the_asset_it_is_scheduled_on(airflow_db, dags_folder, downstream,
                                                                          data_home, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import DagModel
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    bag = DagBag(dag_folder=str(dags_folder))
    assert not bag.import_errors
    upstream, share = bag.dags["orders_daily"], bag.dags["channel_share"]
    assert type(share.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.uri for a in share.timetable.asset_condition.objects] == [REVENUE_URI]
    assert REVENUE_URI in [a.uri for a in upstream.get_task("publish_revenue").outlets]

    # The first run writes both DAGs to the metadata DB; Airflow queues asset runs only for unpaused DAGs.
    assert upstream.test(logical_date=midnight(date(2025, 3, 2))).state == "success"
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == "channel_share").update({"is_paused": False})

    day = date(2025, 3, 2)
    assert upstream.test(logical_date=midnight(day + timedelta(days=1))).state == "success"
    with create_session() as session:
        events = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                  .filter(AssetModel.uri == REVENUE_URI).order_by(AssetEvent.id).all())
        event_id, extra = events[-1].id, events[-1].extra
        queued = session.query(AssetDagRunQueue).filter(AssetDagRunQueue.target_dag_id == "channel_share").count()
    assert extra["window_start"] == "2025-03-02T00:00:00+00:00" and extra["window_end"] == "2025-03-03T00:00:00+00:00"
    assert extra["dag_id"] == "orders_daily" and extra["step"] == "publish_revenue"
    assert queued == 1

    # What the scheduler does next: an asset-triggered run (no data interval) that consumed the event.
    # dag.test has no asset-triggered mode, so its run is given the event the scheduler would attach.
    import airflow.models.dagrun as dagrun_module

    original = dagrun_module.get_or_create_dagrun

    def with_event(**kwargs):
        dr = original(**kwargs)
        kwargs["session"].add(dr)
        dr.consumed_asset_events.append(kwargs["session"].get(AssetEvent, event_id))
        kwargs["session"].commit()
        return dr

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", with_event)
    run = share.test(logical_date=None, run_after=datetime(2025, 3, 4, 1, tzinfo=UTC))
    assert run.state == "success"

    expected = {ch: net for ch, _, _, _, net, _ in expected_revenue(data_home / "source.db", day)}
    rows = warehouse_rows(data_home / "warehouse.duckdb",
                          "SELECT channel, net_revenue, share, batch_date FROM analytics.channel_share ORDER BY channel")
    assert {r[0]: r[1] for r in rows} == expected
    assert {r[3] for r in rows} == {day}  # the upstream's window, not the day before run_after
    total = sum(expected.values())
    for _, net, share_value, _ in rows:
        assert abs(Decimal(str(share_value)) - net / total) < Decimal("1e-9")
