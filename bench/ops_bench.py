"""Operations benchmark: LocalExecutor vs CeleryExecutor (two workers) on the same backfill, on DuckLake.

    make bench-ops          (or: .venv/bin/python bench/ops_bench.py [--days 20] [--file-days 6])

A 6-step pipeline (the orders_daily example plus a check of its rollup) is backfilled over --days days
on a stack started by scripts/dev_stack.py over a PostgreSQL metadata DB of its own, once per
executor, with the same parallelism (4 task slots: LocalExecutor parallelism 4; 2 Celery workers
x concurrency 2) and max_active_runs 4. From the task instances' own start and end dates:

- scheduling overhead: for each task with upstream tasks, its start minus the latest end of its
  upstream tasks in the same run (what the scheduler, queue and worker add between two steps);
- wall time: first task start to last task end of the backfill;
- warehouse steps at once (transform and publish tasks, over all runs): the most running at one instant and the
  seconds during which two or more ran, from their start and end dates.

Both runs write a DuckLake warehouse, its catalog in a scratch PostgreSQL database. A third run, Celery on the
DuckDB file (--file-days, shorter: it only has to show the lock), gives the same figures twice: from the task
times, and with each task's wait for the file's lock (its log says how long) taken off its start, since a
task queued for the lock runs in Airflow's eyes but does no warehouse work. A task holds the file only while it
writes, not for its whole run (start-up, imports, Airflow's bookkeeping): at the sample's size the writes queue
for a few seconds in all while the tasks still overlap. Every run checks that the published
table holds every source row of its days, once.

Needs PostgreSQL on 127.0.0.1:5432 and, for Celery, Redis on 127.0.0.1:6379 (database 12).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests")]

import re  # noqa: E402

from ops_stack import (  # noqa: E402
    dags_folder,
    ducklake_on_postgres,
    lake_rows,
    overlap,
    postgres_db,
    postgres_up,
    redis_up,
    running_stack,
    ts,
    warehouse_task_ids,
)
from support.expected import source_orders, warehouse_rows  # noqa: E402

DAG = "orders_daily"
FIRST = date(2025, 3, 1)


LOCK_WAIT = re.compile(r"opened after ([0-9.]+)s waiting for the lock")
COUNT = "SELECT count(*), count(DISTINCT order_id) FROM analytics.orders"


def six_step_definition(dags: Path) -> dict:
    spec = json.loads((ROOT / "dags" / "definitions" / f"{DAG}.json").read_text())
    spec["steps"].insert(4, {
        "id": "check_revenue", "kind": "validate", "input": "daily_revenue", "after": ["daily_revenue"],
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "channel"}}],
    })
    spec["steps"][5]["after"] = ["check_revenue"]
    assert len(spec["steps"]) == 6
    (dags / "definitions" / f"{DAG}.json").write_text(json.dumps(spec))
    return spec


def lock_wait(stack, ti: dict) -> float:
    """Seconds the task waited for the DuckDB file's lock, from its log (0 on DuckLake, which has none)."""
    log = (stack.home / "logs" / f"dag_id={DAG}" / f"run_id={ti['dag_run_id']}" / f"task_id={ti['task_id']}"
           / f"attempt={ti['try_number']}.log")
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(float(m) for m in LOCK_WAIT.findall(text))


def measure(stack, days: int, writers: set[str]) -> dict:
    tasks = stack.get(f"/api/v2/dags/{DAG}/tasks")["tasks"]
    upstream: dict[str, set[str]] = {t["task_id"]: set() for t in tasks}
    for t in tasks:
        for down in t["downstream_task_ids"]:
            upstream[down].add(t["task_id"])
    started = time.monotonic()
    backfill = stack.post("/api/v2/backfills", {
        "dag_id": DAG, "from_date": f"{FIRST}T00:00:00Z",
        "to_date": f"{FIRST + timedelta(days=days - 1)}T00:00:00Z", "max_active_runs": 4,
    })
    while not stack.get(f"/api/v2/backfills/{backfill['id']}")["completed_at"]:
        if time.monotonic() - started > 3600:
            raise SystemExit(f"backfill not done after an hour\n{stack.logs()}")
        time.sleep(2)
    runs = stack.runs(DAG, run_type="backfill")
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    gaps, starts, ends, n = [], [], [], 0
    steps, held, waited = [], [], 0.0
    for run in runs:
        tis = {t["task_id"]: t for t in stack.task_instances(DAG, run["dag_run_id"])}
        n += len(tis)
        for task_id, ti in tis.items():
            if task_id in writers and ti["start_date"] and ti["end_date"]:
                wait = lock_wait(stack, ti)
                waited += wait
                steps.append((ts(ti["start_date"]), ts(ti["end_date"])))
                held.append((min(steps[-1][0] + timedelta(seconds=wait), steps[-1][1]), steps[-1][1]))
            starts.append(ts(ti["start_date"]))
            ends.append(ts(ti["end_date"]))
            # An upstream that never ran (upstream_failed, skipped) has no end: no gap to measure there.
            ups = [ts(tis[u]["end_date"]) for u in upstream[task_id] if u in tis and tis[u]["end_date"]]
            if ups and ti["start_date"]:
                gaps.append((ts(ti["start_date"]) - max(ups)).total_seconds())
    durations = [(e - s).total_seconds() for s, e in zip(starts, ends) if s and e]
    (most, shared), (most_held, shared_held) = overlap(steps), overlap(held)
    return {
        "steps_at_once": most, "steps_shared_s": shared, "held_at_once": most_held, "held_shared_s": shared_held,
        "lock_wait_s": waited, "writer_tasks": len(steps),
        "runs": len(runs), "failed": len(failed), "tasks": n,
        "overhead_median_s": statistics.median(gaps), "overhead_p90_s": statistics.quantiles(gaps, n=10)[-1],
        "overhead_mean_s": statistics.fmean(gaps), "task_median_s": statistics.median(durations),
        "wall_s": (max(e for e in ends if e) - min(s for s in starts if s)).total_seconds(),
    }


def published(data: Path, lake: str | None, days: int) -> dict:
    """analytics.orders against the source: every row of the backfilled days, each once."""
    want = sum(len(source_orders(data / "source.db", FIRST + timedelta(days=i))) for i in range(days))
    [(rows, distinct)] = lake_rows(lake, COUNT) if lake else warehouse_rows(data / "warehouse.duckdb", COUNT)
    return {"rows": rows, "rows_ok": rows == distinct == want}


def executor_env(executor: str) -> dict[str, str]:
    """One executor's stack settings, 4 task slots either way (Celery: 2 workers x concurrency 2)."""
    env = {"AIRFLOW__CORE__PARALLELISM": "4"}
    if executor == "CeleryExecutor":
        # A queue of its own: a worker left over from another stack on the same Redis never takes these tasks.
        env.update(DAGSPEC_EXECUTOR="CeleryExecutor", DAGSPEC_CELERY_WORKERS="2", DAGSPEC_CELERY_CONCURRENCY="2",
                   DAGSPEC_CELERY_BROKER="redis://127.0.0.1:6379/12",
                   AIRFLOW__OPERATORS__DEFAULT_QUEUE=f"ds_ops_bench_{uuid.uuid4().hex[:8]}")
    return env


def run_one(executor: str, days: int, warehouse: str) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"ds-ops-bench-{executor.lower()}-{warehouse}-"))
    dags = dags_folder(root, [])
    writers = warehouse_task_ids(six_step_definition(dags))
    env = executor_env(executor)
    name = f"{executor} on {warehouse}"
    print(f"{name}: starting the stack in {root} ...", flush=True)
    try:
        with contextlib.ExitStack() as stack_of:
            lake = stack_of.enter_context(ducklake_on_postgres(root)) if warehouse == "DuckLake" else None
            if lake:
                env["AIRFLOW_CONN_DAGSPEC_WAREHOUSE"] = lake
            url = stack_of.enter_context(postgres_db("ds_ops_bench"))
            stack = stack_of.enter_context(running_stack(root, dags, url, [DAG], **env))
            print(f"{name}: backfilling {days} days ...", flush=True)
            result = measure(stack, days, writers)
            result.update(published(root / "data", lake, days))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{name}: {json.dumps(result)}", flush=True)
    return result


def main() -> int:
    started = time.monotonic()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # 20 days keeps the three stacks near 12 minutes on 2 busy cores; --days 30 is the longer comparison.
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--file-days", type=int, default=6, help="days of the Celery run on the DuckDB file")
    args = parser.parse_args()
    if not postgres_up() or not redis_up():
        print("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
        return 2
    cols = [("LocalExecutor", args.days, "DuckLake"), ("CeleryExecutor", args.days, "DuckLake"),
            ("CeleryExecutor", args.file_days, "DuckDB file")]
    res = [run_one(*c) for c in cols]
    local, celery, file = res
    rows = [
        ("backfilled days", *(c[1] for c in cols), None),
        ("DAG runs (failed)", *(f"{r['runs']} ({r['failed']})" for r in res), None),
        ("task instances", *(r["tasks"] for r in res), None),
        ("published rows (all there, once)", *(f"{r['rows']} ({'yes' if r['rows_ok'] else 'NO'})" for r in res), None),
        ("scheduling overhead, median (s)", *(r["overhead_median_s"] for r in res), "overhead_median_s"),
        ("scheduling overhead, p90 (s)", *(r["overhead_p90_s"] for r in res), "overhead_p90_s"),
        ("task run time, median (s)", *(r["task_median_s"] for r in res), "task_median_s"),
        ("wall time of the backfill (s)", *(r["wall_s"] for r in res), "wall_s"),
        ("warehouse steps (transform, publish)", *(r["writer_tasks"] for r in res), None),
        ("  most at once, task times", *(r["steps_at_once"] for r in res), None),
        ("  s with 2+ at once, task times", *(r["steps_shared_s"] for r in res), "steps_shared_s"),
        ("  waiting for the file lock, total (s)", *(r["lock_wait_s"] for r in res), "lock_wait_s"),
        ("  most at once, lock wait off", *(r["held_at_once"] for r in res), None),
        ("  s with 2+ at once, lock wait off", *(r["held_shared_s"] for r in res), "held_shared_s"),
    ]
    print("\n6-step pipeline (3 warehouse steps), 4 task slots each (Celery: 2 workers x 2), max_active_runs 4;"
          "\nDuckLake: catalog in PostgreSQL, Parquet files in a local folder\n")
    print(f"{'':40} {'Local, lake':>13} {'Celery, lake':>13} {'Celery, file':>13}")
    for label, a, b, c, key in rows:
        fmt = (lambda v: f"{v:13.2f}") if key else (lambda v: f"{v!s:>13}")
        print(f"{label:40} {fmt(a)} {fmt(b)} {fmt(c)}")
    print(f"\nwhole run, three stacks: {time.monotonic() - started:.0f} s")
    return 0 if not any(r["failed"] or not r["rows_ok"] for r in res) else 1


if __name__ == "__main__":
    sys.exit(main())
