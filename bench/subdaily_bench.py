"""An hourly pipeline's day (24 partitions, one process) against the same rows as one daily partition.

Each run is a whole `python` process (start-up, imports, extract + validate + publish to DuckDB), timed from
outside, in a fresh DAGSPEC_HOME over the same SQLite source. Median of 3 interleaved runs; the target is
the hourly day within 2x of the daily partition. `python bench/subdaily_bench.py [rows]`
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
INCLUDE = Path(__file__).resolve().parents[1] / "include"
RUN = """
import json, sys
from datetime import datetime, UTC
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
p = Pipeline.model_validate(json.loads(sys.argv[1]))
for s in p.steps:
    run_step(p, s.id, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))
"""


def definition(schedule: str) -> dict:
    return {"dag_id": "bench_grain", "schedule": schedule, "start_date": "2025-03-01", "steps": [
        {"id": "extract_orders", "kind": "extract",
         "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "check_orders", "kind": "validate", "input": "extract_orders",
         "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
         "table": {"schema": "analytics", "table": "orders"}}]}


def source(path: Path) -> None:
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE orders (order_id INTEGER PRIMARY KEY, amount REAL, ordered_at DATETIME)")
        step = 86_400 / ROWS
        con.executemany("INSERT INTO orders VALUES (?, ?, datetime('2025-03-01', '+' || ? || ' seconds'))",
                        ((i, i % 1000 / 10, int(i * step)) for i in range(ROWS)))


def once(schedule: str, seed: Path) -> float:
    home = Path(tempfile.mkdtemp(prefix="dagspec-bench-grain-"))
    try:
        shutil.copy(seed, home / "source.db")
        env = {**os.environ, "DAGSPEC_HOME": str(home), "PYTHONPATH": str(INCLUDE)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", RUN, json.dumps(definition(schedule))], env=env, check=True,
                       capture_output=True)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "source.db"
        source(seed)
        times: dict[str, list[float]] = {"@daily": [], "@hourly": []}
        for _ in range(3):
            for schedule in times:
                times[schedule].append(once(schedule, seed))
    daily, hourly = (statistics.median(times[s]) for s in ("@daily", "@hourly"))
    print(f"{ROWS:,} rows over one day, extract + validate + publish (DuckDB), whole process, median of 3")
    print(f"  @daily  (1 partition):   {daily:6.2f} s")
    print(f"  @hourly (24 partitions): {hourly:6.2f} s")
    print(f"  ratio hourly/daily: {hourly / daily:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
