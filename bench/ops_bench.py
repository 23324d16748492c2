"""Operations benchmark: LocalExecutor vs CeleryExecutor (two workers) on the same 30-day backfill.

    make bench-ops          (or: .venv/bin/python bench/ops_bench.py [--days 30])

A 6-step pipeline (the orders_daily example plus a check of its rollup) is backfilled over 30 days
on a stack started by scripts/dev_stack.py over a PostgreSQL metadata DB of its own, once per
executor, with the same parallelism (4 task slots: LocalExecutor parallelism 4; 2 Celery workers
x concurrency 2) and max_active_runs 4. From the task instances' own start and end dates:

- scheduling overhead: for each task with upstream tasks, its start minus the latest end of its
  upstream tasks in the same run (what the scheduler, queue and worker add between two steps);
- wall time: first task start to last task end of the backfill.

Needs PostgreSQL on 127.0.0.1:5432 and, for Celery, Redis on 127.0.0.1:6379 (database 12).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests")]

from ops_stack import dags_folder, postgres_db, postgres_up, redis_up, running_stack  # noqa: E402

DAG = "orders_daily"
FIRST = date(2025, 3, 1)


def six_step_definition(dags: Path) -> None:
    spec = json.loads((ROOT / "dags" / "definitions" / f"{DAG}.json").read_text())
    spec["steps"].insert(4, {
        "id": "check_revenue", "kind": "validate", "input": "daily_revenue", "after": ["daily_revenue"],
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "channel"}}],
    })
    spec["steps"][5]["after"] = ["check_revenue"]
    assert len(spec["steps"]) == 6
    (dags / "definitions" / f"{DAG}.json").write_text(json.dumps(spec))


def ts(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def measure(stack, days: int) -> dict:
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
    for run in runs:
        tis = {t["task_id"]: t for t in stack.task_instances(DAG, run["dag_run_id"])}
        n += len(tis)
        for task_id, ti in tis.items():
            starts.append(ts(ti["start_date"]))
            ends.append(ts(ti["end_date"]))
            # An upstream that never ran (upstream_failed, skipped) has no end: no gap to measure there.
            ups = [ts(tis[u]["end_date"]) for u in upstream[task_id] if u in tis and tis[u]["end_date"]]
            if ups and ti["start_date"]:
                gaps.append((ts(ti["start_date"]) - max(ups)).total_seconds())
    durations = [(e - s).total_seconds() for s, e in zip(starts, ends) if s and e]
    return {
        "runs": len(runs), "failed": len(failed), "tasks": n,
        "overhead_median_s": statistics.median(gaps), "overhead_p90_s": statistics.quantiles(gaps, n=10)[-1],
        "overhead_mean_s": statistics.fmean(gaps), "task_median_s": statistics.median(durations),
        "wall_s": (max(e for e in ends if e) - min(s for s in starts if s)).total_seconds(),
    }


def executor_env(executor: str) -> dict[str, str]:
    """One executor's stack settings, 4 task slots either way (Celery: 2 workers x concurrency 2)."""
    env = {"AIRFLOW__CORE__PARALLELISM": "4"}
    if executor == "CeleryExecutor":
        # A queue of its own: a worker left over from another stack on the same Redis never takes these tasks.
        env.update(DAGSPEC_EXECUTOR="CeleryExecutor", DAGSPEC_CELERY_WORKERS="2", DAGSPEC_CELERY_CONCURRENCY="2",
                   DAGSPEC_CELERY_BROKER="redis://127.0.0.1:6379/12",
                   AIRFLOW__OPERATORS__DEFAULT_QUEUE=f"ds_ops_bench_{uuid.uuid4().hex[:8]}")
    return env


def run_one(executor: str, days: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"ds-ops-bench-{executor.lower()}-"))
    dags = dags_folder(root, [])
    six_step_definition(dags)
    env = executor_env(executor)
    print(f"{executor}: starting the stack in {root} ...", flush=True)
    try:
        with postgres_db("ds_ops_bench") as url, running_stack(root, dags, url, [DAG], **env) as stack:
            print(f"{executor}: backfilling {days} days ...", flush=True)
            result = measure(stack, days)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{executor}: {json.dumps(result)}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    if not postgres_up() or not redis_up():
        print("needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379")
        return 2
    local = run_one("LocalExecutor", args.days)
    celery = run_one("CeleryExecutor", args.days)
    rows = [
        ("DAG runs (failed)", f"{local['runs']} ({local['failed']})", f"{celery['runs']} ({celery['failed']})", None),
        ("task instances", local["tasks"], celery["tasks"], None),
        ("scheduling overhead, median (s)", local["overhead_median_s"], celery["overhead_median_s"], "overhead_median_s"),
        ("scheduling overhead, p90 (s)", local["overhead_p90_s"], celery["overhead_p90_s"], "overhead_p90_s"),
        ("scheduling overhead, mean (s)", local["overhead_mean_s"], celery["overhead_mean_s"], "overhead_mean_s"),
        ("task run time, median (s)", local["task_median_s"], celery["task_median_s"], "task_median_s"),
        (f"wall time, {args.days}-day backfill (s)", local["wall_s"], celery["wall_s"], "wall_s"),
    ]
    print(f"\n6-step pipeline, {args.days}-day backfill, 4 task slots each, max_active_runs 4\n")
    print(f"{'':38} {'LocalExecutor':>14} {'Celery (2 wk)':>14} {'Celery/Local':>13}")
    for label, a, b, key in rows:
        fmt = (lambda v: f"{v:14.2f}") if key else (lambda v: f"{v!s:>14}")
        ratio = f"{celery[key] / local[key]:13.2f}" if key and local[key] else f"{'':13}"
        print(f"{label:38} {fmt(a)} {fmt(b)} {ratio}")
    return 0 if not (local["failed"] or celery["failed"]) else 1


if __name__ == "__main__":
    sys.exit(main())
