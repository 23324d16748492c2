"""Hourly variants of the bundled orders_daily definition, and the sample's order ids in a UTC window."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from dagspec.spec.model import Pipeline
from support.expected import orders_daily_as


def hourly(dag_id: str, **changes) -> Pipeline:
    data = orders_daily_as(dag_id, **{"schedule": "@hourly", **changes})
    data["steps"] = [s for s in data["steps"] if s["id"] in ("extract_orders", "check_orders", "publish_orders")]
    # an hour of the sample may hold no order: the row-count check is the daily pipeline's
    data["steps"][1]["expectations"] = data["steps"][1]["expectations"][1:3]
    return Pipeline.model_validate(data)


def source_ids(home: Path, lo: datetime, hi: datetime) -> list[int]:
    with sqlite3.connect(home / "source.db") as con:
        return [r[0] for r in con.execute(
            "SELECT order_id FROM orders WHERE substr(ordered_at, 1, 19) >= ? AND substr(ordered_at, 1, 19) < ? "
            "ORDER BY 1", (f"{lo:%Y-%m-%d %H:%M:%S}", f"{hi:%Y-%m-%d %H:%M:%S}"))]
