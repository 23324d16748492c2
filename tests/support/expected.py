"""Expected values computed straight from the sample source, independently of dagspec's code paths."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

CENT = Decimal("0.01")
EXAMPLE = Path(__file__).resolve().parents[2] / "dags/definitions/orders_daily.json"
LOST = ("cancelled", "returned")


def source_orders(db: Path, day: date) -> list[tuple]:
    lo = f"{day.isoformat()} 00:00:00"
    hi = f"{(day + timedelta(days=1)).isoformat()} 00:00:00"
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT order_id, customer_id, ordered_at, status, channel, amount FROM orders "
            "WHERE substr(ordered_at, 1, 19) >= ? AND substr(ordered_at, 1, 19) < ? ORDER BY order_id",
            (lo, hi),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3], r[4], Decimal(str(r[5])).quantize(CENT)) for r in rows]


def expected_revenue(db: Path, day: date) -> list[tuple]:
    agg: dict[str, list] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for _, _, _, status, channel, amount in source_orders(db, day):
        a = agg[channel]
        a[0] += 1
        a[1] += status in LOST
        a[2] += amount
        a[3] += 0 if status in LOST else amount
    return [(ch, *vals, day) for ch, vals in sorted(agg.items())]


def warehouse_rows(db: Path, sql: str, params=None) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def orders_daily_as(dag_id: str, **changes) -> dict:
    """The shipped orders_daily definition under another dag_id, with tables of its own (so it shares no output
    with the example) and the given top-level changes."""
    data = json.loads(EXAMPLE.read_text())
    data.pop("$schema")
    data.update(dag_id=dag_id, **changes)
    for step in data["steps"]:
        if step["kind"] == "extract":
            step["target"]["table"] = f"{dag_id}_orders"
        if step["kind"] == "publish":
            step["table"]["table"] = f"{dag_id}_{step['table']['table']}"
    return data
