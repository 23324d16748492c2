"""The bundled sample: customers and a year of orders in the embedded SQLite source, made deterministically.

Two modes: the demo's window ends yesterday (`make up`, so the scheduler's first runs find data), and a fixed
window ending FIXED_END (the tests, which assert exact sums). The seed is the window's first day, so one window
always gives the same bytes, and the fixed window keeps the bytes it always had. Written through SQLAlchemy's typed
columns so timestamps are stored in the one format the extract's bound parameters compare against.
"""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    insert,
)

FIXED_END = date(2025, 12, 31)
DAYS = 365
CUSTOMERS = 5_000
ORDERS_PER_DAY = (300, 500)

metadata = MetaData()
customers = Table(
    "customers",
    metadata,
    Column("customer_id", Integer, primary_key=True),
    Column("name", String(80), nullable=False),
    Column("email", String(120), nullable=False),
    Column("country", String(2), nullable=False),
    Column("segment", String(20), nullable=False),
    Column("signup_date", Date, nullable=False),
)
orders = Table(
    "orders",
    metadata,
    Column("order_id", Integer, primary_key=True),
    Column("customer_id", Integer, nullable=False),
    Column("ordered_at", DateTime, nullable=False, index=True),
    Column("status", String(12), nullable=False),
    Column("channel", String(12), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
)

COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "SE", "PL", "CA"]
SEGMENTS = ["consumer", "corporate", "small_business"]
STATUSES = ["placed", "shipped", "delivered", "cancelled", "returned"]
CHANNELS = ["web", "mobile", "store", "partner"]
FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Dennis", "Radia", "Linus"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Ritchie"]


@dataclass(frozen=True)
class Sample:
    """What `build` wrote."""

    customers: int
    orders: int
    first_day: date
    last_day: date


def today() -> date:
    return datetime.now(UTC).date()


def yesterday() -> date:
    """The demo window's last day: the newest whole UTC day, the one the first @daily run processes."""
    return today() - timedelta(days=1)


def window(end: date, days: int = DAYS) -> tuple[date, date]:
    """(first, last) day of a sample ending on `end`."""
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    return end - timedelta(days=days - 1), end


def build(path: str | Path, *, end: date = FIXED_END, days: int = DAYS,
          customer_count: int = CUSTOMERS) -> Sample:
    """Write the sample database to `path` (replacing it whole): `days` days of orders ending on `end`."""
    first_day, _ = window(end, days)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    rng = random.Random(int(first_day.strftime("%Y%m%d")))
    engine = create_engine(f"sqlite:///{tmp}")
    metadata.create_all(engine)
    customer_rows = [
        {
            "customer_id": cid,
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "email": f"customer{cid}@example.com",
            "country": rng.choice(COUNTRIES),
            "segment": rng.choice(SEGMENTS),
            "signup_date": first_day - timedelta(days=rng.randint(0, 1500)),
        }
        for cid in range(1, customer_count + 1)
    ]
    order_rows: list[dict] = []
    for offset in range(days):
        order_rows += orders_of_day(rng, first_day + timedelta(days=offset), customer_rows, len(order_rows) + 1)
    with engine.begin() as conn:
        conn.execute(insert(customers), customer_rows)
        conn.execute(insert(orders), order_rows)
    engine.dispose()
    os.replace(tmp, path)
    return Sample(customers=len(customer_rows), orders=len(order_rows), first_day=first_day, last_day=end)


def orders_of_day(rng: random.Random, day: date, customer_rows: list[dict], first_id: int) -> list[dict]:
    """One day's orders, numbered from `first_id`, drawn from `rng`."""
    start = datetime.combine(day, datetime.min.time())
    rows = []
    for order_id in range(first_id, first_id + rng.randint(*ORDERS_PER_DAY)):
        # Same draws in the same order as always (so every other value stays put); the status
        # depends on the order and its customer, which gives the example model a signal.
        customer_id = rng.randint(1, len(customer_rows))
        ordered_at = start + timedelta(seconds=rng.randint(0, 86_399))
        u = rng.random()
        channel = rng.choice(CHANNELS)
        amount = Decimal(rng.randint(500, 50_000)) / 100
        customer = customer_rows[customer_id - 1]
        rows.append({"order_id": order_id, "customer_id": customer_id, "ordered_at": ordered_at,
                     "status": status_for(u, channel, amount, customer["segment"], customer["country"]),
                     "channel": channel, "amount": amount, "currency": "EUR"})
    return rows


def extend(path: str | Path, through: date) -> int:
    """Append the days after the sample's last one up to `through` (a running demo's new days), each drawn from
    its own seed, so the same day always gets the same orders; days it has are left as they are. Returns the
    orders added. One transaction: a reader sees a new day whole or not at all."""
    from sqlalchemy import func, select

    found = window_of(path)
    if found is None:
        raise ValueError(f"{path} holds no sample orders: create it with `dagspec sample-data` first")
    engine = create_engine(f"sqlite:///{Path(path)}")
    added = 0
    try:
        with engine.begin() as conn:
            customer_rows = [dict(r._mapping) for r in conn.execute(select(customers).order_by(customers.c.customer_id))]
            next_id = (conn.execute(select(func.max(orders.c.order_id))).scalar() or 0) + 1
            day = found[1] + timedelta(days=1)
            while day <= through:
                rows = orders_of_day(random.Random(int(day.strftime("%Y%m%d")) * 7919), day, customer_rows, next_id)
                conn.execute(insert(orders), rows)
                next_id += len(rows)
                added += len(rows)
                day += timedelta(days=1)
    finally:
        engine.dispose()
    return added


LOST_BY_CHANNEL = {"web": 0.08, "mobile": 0.06, "store": 0.02, "partner": 0.22}
LOST_BY_SEGMENT = {"consumer": 0.03, "corporate": -0.03, "small_business": 0.0}


def lost_probability(channel: str, amount: Decimal, segment: str, country: str) -> float:
    """Chance that an order ends cancelled or returned: partner and big orders more, stores less."""
    p = LOST_BY_CHANNEL[channel] + LOST_BY_SEGMENT[segment] + 0.12 * float(amount) / 500
    p += 0.04 if country in ("US", "GB") else 0.0
    return min(max(p, 0.005), 0.9)


def status_for(u: float, channel: str, amount: Decimal, segment: str, country: str) -> str:
    """One uniform draw -> a status: below the lost probability it is cancelled/returned (60/40), else kept."""
    lost = lost_probability(channel, amount, segment, country)
    if u < lost:
        return "cancelled" if u < lost * 0.6 else "returned"
    kept = (u - lost) / (1 - lost)
    return "placed" if kept < 1 / 9 else "shipped" if kept < 3 / 9 else "delivered"


def window_of(path: str | Path) -> tuple[date, date] | None:
    """(first, last) day of the orders in an existing sample, or None when it is not one."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)) as con:
            first, last = con.execute("SELECT min(ordered_at), max(ordered_at) FROM orders").fetchone()
    except sqlite3.Error:
        return None
    if first is None:
        return None
    return date.fromisoformat(first[:10]), date.fromisoformat(last[:10])
