"""The Airflow side of a range backfill: day by day (Airflow's backfill, a run a date) against `--chunk` runs.

    make bench-airflow-range   (or: .venv/bin/python bench/airflow_range_bench.py [--days 60] [--chunk 30]
                                [--executor CeleryExecutor] [--executor LocalExecutor ...])

One stack per executor (bench/ops_bench.py's settings: 4 task slots; Celery 2 workers x 2) serves the bundled
orders_daily on the fixed 2025 sample, its warehouse the DuckDB file. The same window of --days dates from
2025-01-01 is backfilled three ways, each from a fresh store and warehouse (the source stays): `dagspec backfill`
(Airflow's backfill, max_active_runs 4), `--chunk 30` (one manual run per 30 dates) and `--chunk DAYS` (one
run). Each figure is the whole `dagspec backfill` process, timed from outside, until its last run ended. Every
way must publish the same analytics.daily_revenue rows (exact values) and every source order of the window once.
Needs PostgreSQL on 127.0.0.1:5432 (and Redis on 6379 for Celery).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from ops_bench import DAG, executor_env  # bench/, this script's folder, is on sys.path
from ops_stack import dags_folder, postgres_db, postgres_up, redis_up, running_stack
from support.expected import source_orders, warehouse_rows

FIRST = date(2025, 1, 1)
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))
REVENUE = "SELECT * FROM analytics.daily_revenue ORDER BY ALL"
ORDERS = "SELECT count(*), count(DISTINCT order_id) FROM analytics.orders"


def fresh_outputs(data: Path) -> None:
    """A new store and warehouse for the next way, so each one is measured from nothing and its rows are its own."""
    shutil.rmtree(data / "store", ignore_errors=True)
    for path in data.glob("warehouse.duckdb*"):
        path.unlink()


def one_way(stack, root: Path, days: int, extra: list[str]) -> dict:
    data = root / "data"
    fresh_outputs(data)
    earlier = {r["dag_run_id"] for r in stack.runs(DAG)}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    # cwd: the dags folder's definitions are the ones `--chunk` reads the schedule from (the stack's own copy).
    done = subprocess.run(
        [
            DAGSPEC,
            "backfill",
            DAG,
            "--from",
            str(FIRST),
            "--to",
            str(FIRST + timedelta(days=days - 1)),
            "--url",
            stack.url,
            *extra,
        ],
        env=stack.env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"dagspec backfill {' '.join(extra)} exited {done.returncode}\n{done.stdout}{done.stderr}\n{stack.logs()}"
        )
    runs = [r for r in stack.runs(DAG) if r["dag_run_id"] not in earlier]
    tis = [t for r in runs for t in stack.task_instances(DAG, r["dag_run_id"])]
    want = sum(len(source_orders(data / "source.db", FIRST + timedelta(days=i))) for i in range(days))
    [(rows, distinct)] = warehouse_rows(data / "warehouse.duckdb", ORDERS)
    return {
        "wall_s": wall,
        "per_partition_s": wall / days,
        "runs": len(runs),
        "failed_runs": sum(r["state"] != "success" for r in runs),
        "tasks": len(tis),
        "retried_tasks": sum(t["try_number"] > 1 for t in tis),
        "load_1m": load,
        "orders_ok": rows == distinct == want,
        "revenue": warehouse_rows(data / "warehouse.duckdb", REVENUE),
    }


def run_stack(executor: str, days: int, chunks: list[int]) -> dict[str, dict]:
    root = Path(tempfile.mkdtemp(prefix=f"ds-airflow-range-{executor.lower()}-"))
    ways = {"day by day": []} | {f"--chunk {n}": ["--chunk", str(n)] for n in chunks}
    results: dict[str, dict] = {}
    print(f"{executor}: starting the stack in {root} ...", flush=True)
    try:
        with contextlib.ExitStack() as stack_of:
            url = stack_of.enter_context(postgres_db("ds_airflow_range"))
            dags = dags_folder(root, [f"{DAG}.json"])
            stack = stack_of.enter_context(running_stack(root, dags, url, [DAG], **executor_env(executor)))
            for name, extra in ways.items():
                print(f"{executor}: {days} dates, {name} ...", flush=True)
                results[name] = one_way(stack, root, days, extra)
                shown = {k: v for k, v in results[name].items() if k != "revenue"}
                print(f"{executor}: {name}: {json.dumps(shown)}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def report(executor: str, days: int, res: dict[str, dict]) -> bool:
    base = res["day by day"]
    same = all(r["revenue"] == base["revenue"] for r in res.values())
    print(f"\n{executor}, orders_daily (5 steps), {days} dates from {FIRST}, DuckDB warehouse, 4 task slots\n")
    names = list(res)
    print(f"{'':34}" + "".join(f"{n:>14}" for n in names))
    lines = [
        ("whole dagspec backfill (s)", lambda r: f"{r['wall_s']:.1f}"),
        ("per partition (s)", lambda r: f"{r['per_partition_s']:.2f}"),
        ("speed-up over day by day", lambda r: f"{base['wall_s'] / r['wall_s']:.1f}x"),
        ("DAG runs (failed)", lambda r: f"{r['runs']} ({r['failed_runs']})"),
        ("task instances (retried)", lambda r: f"{r['tasks']} ({r['retried_tasks']})"),
        ("every order once", lambda r: "yes" if r["orders_ok"] else "NO"),
        ("daily_revenue rows", lambda r: str(len(r["revenue"]))),
        ("  equal to day by day's", lambda r: "yes" if r["revenue"] == base["revenue"] else "NO"),
        ("load average (1 min) at start", lambda r: f"{r['load_1m']:.1f}"),
    ]
    for label, cell in lines:
        print(f"{label:34}" + "".join(f"{cell(r):>14}" for r in res.values()))
    return same and all(r["orders_ok"] and not r["failed_runs"] for r in res.values())


def main() -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60, help="dates from 2025-01-01 (365: the year)")
    parser.add_argument("--chunk", type=int, default=30, help="dates per chunk run (a run of all --days follows)")
    parser.add_argument(
        "--executor", action="append", choices=["LocalExecutor", "CeleryExecutor"], help="repeat for both (default LocalExecutor)"
    )
    args = parser.parse_args()
    executors = args.executor or ["LocalExecutor"]
    if not postgres_up() or ("CeleryExecutor" in executors and not redis_up()):
        print("needs PostgreSQL on 127.0.0.1:5432 (and Redis on 127.0.0.1:6379 for CeleryExecutor)")
        return 2
    chunks = sorted({min(args.chunk, args.days), args.days})
    ok = True
    for executor in executors:
        ok &= report(executor, args.days, run_stack(executor, args.days, chunks))
    print(
        f"\nwhole run: {time.monotonic() - started:.0f} s, {os.cpu_count()} cores, load average now "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
