"""Model steps run on the example definitions without Airflow (the daily scoring one and the weekly retraining
one), the registry they use, and SQL on the warehouse to change the world under them."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagspec.runner import run_step
from dagspec.spec import load_definition
from dagspec.spec.model import Pipeline

ROOT = Path(__file__).resolve().parents[2]
DAILY = load_definition(ROOT / "dags" / "definitions" / "orders_model.json")
RETRAIN = load_definition(ROOT / "dags" / "definitions" / "orders_model_retrain.json")
FEATURE_STEPS = ("extract_orders", "extract_customers", "order_features")
MODEL = "orders_lost"


def utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def features_for(first: date, end: date) -> None:
    for step in FEATURE_STEPS:
        run_step(DAILY, step, utc(first), utc(end))


def daily_with(path: Path, change: Callable[[dict], None]) -> Pipeline:
    """The example daily model definition, changed by `change`, written to `path`; with a champion trained."""
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model.json").read_text())
    change(data)
    path.write_text(json.dumps(data))
    pipeline = load_definition(path)
    retrain(date(2025, 4, 1))
    return pipeline


def retrain(end: date) -> dict:
    """One retraining run whose (weekly) window ends on `end`: train, evaluate, promote."""
    return {s: run_step(RETRAIN, s, utc(end) - timedelta(days=7), utc(end)) for s in ("train", "evaluate", "promote")}


def registry():
    from dagspec.connections import env_resolver
    from dagspec.ml.registry import Registry

    return Registry.open(env_resolver)


def sql(home: Path, statement: str) -> None:
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        con.execute(statement)
    finally:
        con.close()

