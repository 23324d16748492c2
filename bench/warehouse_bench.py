"""Warehouse benchmark: the DuckDB file vs DuckLake (SQLite catalog) vs DuckLake (PostgreSQL catalog).

    make bench-warehouse          (or: .venv/bin/python bench/warehouse_bench.py [--repeats 3])

The orders_daily example's warehouse steps (publish_orders, daily_revenue, publish_revenue) on the bundled
sample, its extracts and checks staged once beforehand (they never touch the warehouse). Every figure is a
whole process (Python start, imports, extension loading included), as an Airflow task pays it, each warehouse
fresh, the three warehouses interleaved in each repeat (median shown):

- one run: one process, one day;
- with a reader: the same, while another process reads the published table every 20 ms (a person looking
  at the results): the run's time, and how many of the reader's reads were done or refused;
- 2 and 4 concurrent publishes: that many processes, one day each, started together: wall time to the last.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth) for the PostgreSQL catalog.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST = date(2025, 3, 1)
STEPS = ("publish_orders", "daily_revenue", "publish_revenue")
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
KINDS = ("duckdb file", "ducklake sqlite", "ducklake postgres")


def pipeline():
    from dagspec.spec import load_definition

    return load_definition(ROOT / "dags" / "definitions" / "orders_daily.json")


def child_run(days: list[str]) -> dict:
    """The warehouse steps of orders_daily for `days`, in this process."""
    from dagspec.runner import run_step, window_of_day

    p = pipeline()
    started = time.monotonic()
    for day in days:
        window = window_of_day(p, date.fromisoformat(day))
        for step in STEPS:
            run_step(p, step, window.start, window.end)
    return {"steps_s": time.monotonic() - started}


def child_read(stop: str) -> dict:
    """Read analytics.orders every 20 ms until `stop` exists, as someone looking at the results would."""
    import duckdb

    from dagspec.connections import env_resolver
    from dagspec.warehouse import open_warehouse

    info = env_resolver("dagspec_warehouse")
    done = refused = 0
    while not os.path.exists(stop):
        try:
            if info.conn_type == "duckdb":  # a DuckDB shell on the file: read-only, still takes the lock
                if not os.path.exists(info.host):
                    time.sleep(0.02)
                    continue
                con = duckdb.connect(info.host, read_only=True)
                try:
                    con.execute("SELECT count(*) FROM analytics.orders").fetchall()
                finally:
                    con.close()
            else:
                with open_warehouse(info).session() as s:
                    s.con.execute("SELECT count(*) FROM analytics.orders").fetchall()
            done += 1
        except duckdb.CatalogException:  # not published yet
            pass
        except duckdb.Error:
            refused += 1
        time.sleep(0.02)
    return {"reads": done, "refused": refused}


class Warehouses:
    """A fresh warehouse connection of each kind per measurement (PostgreSQL catalogs dropped at the end)."""

    def __init__(self, home: Path):
        self.home, self.databases = home, []

    def fresh(self, kind: str) -> str:
        where = self.home / "warehouses" / uuid.uuid4().hex[:8]
        where.mkdir(parents=True)
        if kind == "duckdb file":
            return json.dumps({"conn_type": "duckdb", "host": str(where / "warehouse.duckdb")})
        if kind == "ducklake sqlite":
            catalog = f"sqlite:{where / 'catalog.sqlite'}"
        else:
            import psycopg

            name = f"ds_bench_lake_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            self.databases.append(name)
            catalog = f"postgres:dbname={name} host={PG['host']} user={PG['user']}"
        conn = json.dumps({"conn_type": "ducklake", "extra": {"catalog": catalog, "data_path": str(where / "data")}})
        # The catalog exists before anyone measures (its creation is once per warehouse, not per run).
        from dagspec.connections import parse_connection
        from dagspec.warehouse import open_warehouse

        with open_warehouse(parse_connection("dagspec_warehouse", conn)).session():
            pass
        return conn

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as admin:
            for name in self.databases:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spawn(env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "child", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{err[-4000:]}")
    # A DuckLake write whose commit collided with another writer's is retried whole, and logged so.
    return {**json.loads(out.strip().splitlines()[-1]), "retries": err.count("collided with another writer")}


def measure(env: dict, processes: int, reader: bool) -> dict:
    """`processes` writers (one day each) started together, maybe beside a reader: wall time to the last."""
    stop = Path(tempfile.mkdtemp()) / "stop"
    read = spawn(env, "read", str(stop)) if reader else None
    if read is not None:
        time.sleep(1.0)  # the reader is up and reading before the run starts
    started = time.monotonic()
    writers = [spawn(env, "run", (FIRST + timedelta(days=i)).isoformat()) for i in range(processes)]
    results = [finish(w) for w in writers]
    wall = time.monotonic() - started
    stop.touch()
    outcome = {"wall_s": wall, "steps_s": max(r["steps_s"] for r in results),
               "retries": sum(r["retries"] for r in results)}
    if read is not None:
        outcome.update(finish(read))
    return outcome


def stage(env: dict) -> None:
    """Extract and check the days every measurement publishes, once (no warehouse involved)."""
    code = ("import sys; sys.argv[1:] = []\n"
            "from datetime import date, timedelta\n"
            "from dagspec.runner import run_step, window_of_day\n"
            "from dagspec.spec import load_definition\n"
            f"p = load_definition({str(ROOT / 'dags' / 'definitions' / 'orders_daily.json')!r})\n"
            f"for i in range(4):\n"
            f"    w = window_of_day(p, date.fromisoformat({FIRST.isoformat()!r}) + timedelta(days=i))\n"
            "    for s in ('extract_orders', 'check_orders'):\n"
            "        run_step(p, s, w.start, w.end)\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from dagspec.sample_data import build

    home = Path(tempfile.mkdtemp(prefix="dagspec-bench-warehouse-"))
    build(home / "source.db")
    env = {**os.environ, "DAGSPEC_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path)}
    stage(env)
    warehouses = Warehouses(home)
    cases = [("one run", 1, False), ("one run + a reader", 1, True), ("2 concurrent publishes", 2, False),
             ("4 concurrent publishes", 4, False)]
    got: dict[tuple[str, str], list[dict]] = {}
    print(f"orders_daily's warehouse steps ({', '.join(STEPS)}) on the sample; whole processes; "
          f"median of {args.repeats}, the warehouses interleaved\n", flush=True)
    try:
        for _ in range(args.repeats):
            for case, processes, reader in cases:
                for kind in KINDS:
                    conn = warehouses.fresh(kind)
                    got.setdefault((case, kind), []).append(
                        measure({**env, "AIRFLOW_CONN_DAGSPEC_WAREHOUSE": conn}, processes, reader))
    finally:
        warehouses.drop()
    print(f"{'case':26} {'warehouse':18} {'wall s':>7} {'steps s':>8} {'vs file':>8} {'retries':>8}  "
          "reader reads done/refused")
    for case, _, reader in cases:
        base = statistics.median(r["wall_s"] for r in got[(case, KINDS[0])])
        for kind in KINDS:
            runs = got[(case, kind)]
            wall = statistics.median(r["wall_s"] for r in runs)
            steps = statistics.median(r["steps_s"] for r in runs)
            note = ""
            if reader:
                note = (f"{statistics.median(r['reads'] for r in runs):.0f}/"
                        f"{statistics.median(r['refused'] for r in runs):.0f}")
            retries = sum(r["retries"] for r in runs)
            print(f"{case:26} {kind:18} {wall:7.2f} {steps:8.2f} {wall / base:7.2f}x {retries:8d}  {note}")
    print("\nwall s: start of the writer processes to the end of the last; steps s: the slowest writer's own time in "
          "the steps (without Python start and imports); retries: DuckLake writes run again after a colliding "
          f"commit, summed over the {args.repeats} repeats; reader: reads every 20 ms during the run, median")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        kind, rest = sys.argv[2], sys.argv[3:]
        print(json.dumps(child_run(rest) if kind == "run" else child_read(rest[0])), flush=True)
    else:
        main()
