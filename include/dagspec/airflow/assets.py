"""Every output of a step as an Airflow Asset, so another DAG can be scheduled on it.

The plan (dagspec.plan) computes the URIs from the definition alone (no connection lookup at DAG parse
time); they name connections by id, never by host or secret:
  dagspec-warehouse://<warehouse conn_id>/<schema>/<table>   a published table or a transform's table
  dagspec-store://<store conn_id>/<schema>/<table>           exported partitions
  bigquery://<project or conn_id>/<dataset>/<table>
  gsheets://<spreadsheet id>/<worksheet>
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dagspec.plan import PlannedStep
from dagspec.spec.model import Pipeline


def outlets(planned: PlannedStep) -> list:
    """The step's outputs as Assets (the plan says which: published and transform tables, exports, sheets)."""
    if not planned.asset_uris:
        return []
    from airflow.sdk import Asset

    return [Asset(uri=u) for u in planned.asset_uris]


def inlets(planned: PlannedStep) -> list:
    """The published tables a transform reads the history of, as Assets: lineage for a table another DAG writes."""
    if not planned.inlet_uris:
        return []
    from airflow.sdk import Asset

    return [Asset(uri=u) for u in planned.inlet_uris]


def record_window(dag_id: str, planned: PlannedStep, context: Any, start: datetime, end: datetime) -> None:
    """Put the run's window on each output's Asset event, so a pipeline scheduled on it processes the same days."""
    if not planned.asset_uris or "outlet_events" not in context:
        return
    from airflow.sdk import Asset

    extra = {"dag_id": dag_id, "step": planned.id, "window_start": start.isoformat(), "window_end": end.isoformat()}
    for uri in planned.asset_uris:
        context["outlet_events"][Asset(uri=uri)].extra = extra


def schedule_of(pipeline: Pipeline, timetable: Any, retrain: Any = None) -> Any:
    """The cron timetable OR the Asset conditions: every Asset of `schedule_assets` updated, or a retrain event."""
    from airflow.sdk import Asset, AssetAll, AssetAny, AssetOrTimeSchedule

    conditions = [AssetAll(*(Asset(uri=u) for u in pipeline.schedule_assets))] if pipeline.schedule_assets else []
    conditions += [retrain] if retrain is not None else []
    if not conditions:
        return timetable
    assets = conditions[0] if len(conditions) == 1 else AssetAny(*conditions)
    return assets if timetable is None else AssetOrTimeSchedule(timetable=timetable, assets=assets)


def window_from_events(context: Any) -> tuple[datetime, datetime]:
    """An asset-triggered run's window: that of the newest triggering event carrying one (an upstream
    pipeline's output, a drift check), else the day before run_after."""
    latest = None
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            if (event.extra or {}).get("window_end") and (latest is None or event.timestamp > latest.timestamp):
                latest = event
    if latest is not None:
        return (datetime.fromisoformat(latest.extra["window_start"]), datetime.fromisoformat(latest.extra["window_end"]))
    run_after = context["dag_run"].run_after
    end = datetime(run_after.year, run_after.month, run_after.day, tzinfo=run_after.tzinfo)
    return end - timedelta(days=1), end


def run_window(context: Any) -> tuple[datetime, datetime]:
    """The [start, end) a task of this run processes: its data interval, or an asset-triggered run's window."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")  # absent without a logical date
    if start is None and context.get("triggering_asset_events"):  # asset-triggered (schedule_assets, a retrain)
        start, end = window_from_events(context)
    if start is None or end is None or end <= start:
        raise ValueError(
            f"run {context.get('run_id')} has no data interval; dagspec steps process [start, end). "
            "Trigger with a logical date (the UI's 'Trigger DAG w/ config' or `dagspec run`)."
        )
    return start, end
