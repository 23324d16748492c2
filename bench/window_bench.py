"""Small windows: one day of TPC-H SF1 lineitem out of PostgreSQL, against one indexed SELECT of the same rows.

    make bench-window        (or: .venv/bin/python bench/window_bench.py [--rounds 5])

Data: lineitem SF1 (6,001,215 rows) with an index on l_shipdate, in database ds_window_bench (loaded once,
about 30 s). Each case runs in its own process, interleaved round by round; wall time is the whole process,
"stage" is the extract step alone as the child times it (what an Airflow task pays beyond its start-up).
Cases: dagspec as it plans (auto) and forced to the parallel ctid scan (the plan before this benchmark),
for a day, a month and a year of l_shipdate; the reference is psql's COPY of the same day to /dev/null.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

DB = "ds_window_bench"
ROWS = 6_001_215
WINDOWS = {"day": ("1998-03-01", "1998-03-02"), "month": ("1998-01-01", "1998-02-01"),
           "year": ("1997-01-01", "1998-01-01")}


def prepare() -> None:
    import psycopg
    from extract_data import LINEITEM_DDL, tpch_csv

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone():
            c.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DB, autocommit=True) as c:
        have = c.execute("SELECT to_regclass('lineitem') IS NOT NULL").fetchone()[0]
        if have and c.execute("SELECT count(*) FROM lineitem").fetchone()[0] == ROWS:
            return
    print("loading lineitem SF1 with an index on l_shipdate (once) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp, psycopg.connect(host="127.0.0.1", user="postgres", dbname=DB,
                                                               autocommit=True) as c:
        csv, _, _ = tpch_csv(1, Path(tmp))
        c.execute("DROP TABLE IF EXISTS lineitem")
        c.execute(f"CREATE TABLE lineitem {LINEITEM_DDL}")
        with c.cursor().copy("COPY lineitem FROM STDIN (FORMAT csv, DELIMITER '|')") as cp, open(csv, "rb") as fh:
            while block := fh.read(1 << 20):
                cp.write(block)
        c.execute("CREATE INDEX ON lineitem (l_shipdate)")
        c.execute("VACUUM ANALYZE lineitem")


def child(window: str, out: str) -> None:
    """One extract of `window` into a fresh store; prints the stage's own seconds and the rows staged."""
    from datetime import UTC, datetime

    from dagspec.connections import ConnectionInfo
    from dagspec.runner import run_step
    from dagspec.spec.model import Pipeline

    known = {"src": ConnectionInfo("src", "postgres", "127.0.0.1", 5432, "postgres", None, DB),
             "store": ConnectionInfo("store", "fs", extra={"path": out})}
    pipeline = Pipeline.model_validate({
        "dag_id": "window_bench", "start_date": "1992-01-01", "batch_days": 366, "store": {"conn_id": "store"},
        "steps": [{"id": "extract", "kind": "extract", "target": {"schema": "raw", "table": "lineitem"},
                   "source": {"conn_id": "src", "table": "lineitem", "incremental_column": "l_shipdate"}}],
    })
    start, end = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in WINDOWS[window])
    began = time.perf_counter()
    rows = run_step(pipeline, "extract", start, end, resolver=known.__getitem__)
    print(f"STAGE {time.perf_counter() - began:.4f} ROWS {sum(rows.values())}")


def psql_day() -> list[str]:
    low, high = WINDOWS["day"]
    return ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-o", "/dev/null", "-c",
            f"COPY (SELECT * FROM lineitem WHERE l_shipdate >= '{low}' AND l_shipdate < '{high}') TO STDOUT"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float | None, int | None]:
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{done.stderr[-2000:]}")
    for line in done.stdout.splitlines():
        if line.startswith("STAGE "):
            _, stage, _, rows = line.split()
            return wall, float(stage), int(rows)
    return wall, None, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", nargs=2, metavar=("WINDOW", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    prepare()
    cases = {"psql COPY of the day": (psql_day(), None)}
    for window in WINDOWS:
        for plan in ("auto", "parallel"):
            cases[f"dagspec {window}, {plan}"] = (window, plan)
    results: dict[str, list[tuple]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory(prefix="ds_window_bench_") as tmp:
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
            for name, (what, plan) in cases.items():
                if plan is None:
                    results[name].append(run(what, dict(os.environ)))
                    continue
                out = Path(tmp) / f"{r}-{name.replace(' ', '_').replace(',', '')}"
                env = {**os.environ, "DAGSPEC_PG_SCAN": plan, "PYTHONPATH": str(ROOT / "include")}
                results[name].append(run([sys.executable, __file__, "--child", what, str(out)], env))
    reference = statistics.median(w for w, _, _ in results["psql COPY of the day"])
    print(f"\nmedian of {args.rounds} rounds (whole process wall; stage = the extract step alone)")
    print(f"{'case':<28}{'rows':>10}{'wall s':>9}{'stage s':>9}{'wall/psql':>11}")
    for name, runs in results.items():
        wall = statistics.median(w for w, _, _ in runs)
        stages = [s for _, s, _ in runs if s is not None]
        stage = f"{statistics.median(stages):.3f}" if stages else "-"
        rows = runs[0][2] if runs[0][2] is not None else "-"
        print(f"{name:<28}{rows:>10}{wall:>9.3f}{stage:>9}{wall / reference:>10.1f}x")
    for window in WINDOWS:
        auto = statistics.median(s for _, s, _ in results[f"dagspec {window}, auto"])
        parallel = statistics.median(s for _, s, _ in results[f"dagspec {window}, parallel"])
        print(f"{window}: the planned scan's stage is {parallel / auto:.2f}x faster than the parallel scan alone")


if __name__ == "__main__":
    main()
