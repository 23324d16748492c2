"""Extract benchmark: dagspec against the usual ways of getting a table out of a database into Parquet.

    make bench-extract          (or: .venv/bin/python bench/extract_bench.py [--only postgres|mysql])

PostgreSQL: TPC-H lineitem SF1 (6,001,215 rows) in database ds_extract_bench; MariaDB: lineitem
SF0.2 (1,199,969 rows). Each candidate runs in its own process; wall time and the peak resident
memory of its whole process tree are measured from outside. dagspec's staged partition is checked
(row count and sum(l_extendedprice) against the database), then dagspec runs again on a table
twice as large to show its memory does not grow with the table.

ConnectorX is not a dagspec dependency: it is installed into a separate venv (.local/bench-extract-venv).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_VENV = ROOT / ".local" / "bench-extract-venv"
BENCH_VENV_PINS = ["connectorx==0.4.6", "pyarrow==26.0.1"]
sys.path.insert(0, str(HERE))

PG_URL = "postgresql://postgres@127.0.0.1:5432/ds_extract_bench"
MY_URL = "mysql://root@127.0.0.1:3306/ds_extract_bench"
TARGETS = {"pandas_speedup": 5.0, "vs_fastest": 1.25, "peak_mb": 400}


# ---------------------------------------------------------------- candidates (each runs in a child process)


def run_dagspec(db: str, table: str, out: Path) -> None:
    from datetime import datetime

    sys.path.insert(0, str(ROOT / "include"))
    from dagspec.connections import ConnectionInfo, env_resolver
    from dagspec.runner import run_step
    from dagspec.spec.model import Pipeline

    info = (ConnectionInfo("bench_src", "postgres", "127.0.0.1", 5432, "postgres", None, "ds_extract_bench")
            if db == "postgres" else ConnectionInfo("bench_src", "mysql", "127.0.0.1", 3306, "root", None, "ds_extract_bench"))
    store = ConnectionInfo("bench_store", "fs", extra={"path": str(out)})
    pipeline = Pipeline.model_validate({
        "dag_id": "bench_extract", "start_date": "2025-01-01", "store": {"conn_id": "bench_store"},
        "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": "bench_src", "table": table},
                   "target": {"schema": "raw", "table": table}}],
    })
    known = {"bench_src": info, "bench_store": store}
    run_step(pipeline, "extract", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC),
             resolver=lambda c: known.get(c) or env_resolver(c))


def run_pandas(db: str, table: str, out: Path) -> None:
    """What Airflow's SqlToS3Operator does: the whole result in a DataFrame, then to Parquet."""
    import pandas as pd
    from sqlalchemy import create_engine

    url = {"postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/ds_extract_bench",
           "mysql": "mysql+pymysql://root@127.0.0.1:3306/ds_extract_bench"}[db]
    engine = create_engine(url)
    with engine.connect() as conn:
        df = pd.read_sql(f"SELECT * FROM {table}", conn)
    df.to_parquet(out / "part.parquet", compression="zstd")


def run_connectorx(db: str, table: str, out: Path) -> None:
    import connectorx as cx
    import pyarrow.parquet as pq

    data = cx.read_sql(PG_URL if db == "postgres" else MY_URL, f"SELECT * FROM {table}", return_type="arrow")
    pq.write_table(data, out / "part.parquet", compression="zstd")


def run_duckdb(db: str, table: str, out: Path) -> None:
    import duckdb
    from extract_data import extension

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    if db == "postgres":
        con.execute(f"LOAD '{extension('postgres_scanner')}'")
        con.execute("ATTACH 'host=127.0.0.1 port=5432 user=postgres dbname=ds_extract_bench' AS src (TYPE postgres, READ_ONLY)")
        source = f"src.public.{table}"
    else:
        con.execute(f"LOAD '{extension('mysql_scanner')}'")
        con.execute("ATTACH 'host=127.0.0.1 port=3306 user=root database=ds_extract_bench' AS src (TYPE mysql, READ_ONLY)")
        source = f"src.ds_extract_bench.{table}"
    con.execute(f"COPY (SELECT * FROM {source}) TO '{out / 'part.parquet'}' (FORMAT parquet, COMPRESSION zstd)")


CANDIDATES = {"dagspec": run_dagspec, "pandas": run_pandas, "connectorx": run_connectorx, "duckdb": run_duckdb}


def wire_command(db: str, table: str) -> list[str]:
    """The reference: the server's own fastest single stream into /dev/null (no Parquet, no types)."""
    if db == "postgres":
        return ["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "ds_extract_bench", "-o", "/dev/null",
                "-c", f"COPY {table} TO STDOUT (FORMAT binary)"]
    return ["sh", "-c", f"mysql -h 127.0.0.1 -u root --quick ds_extract_bench -e 'SELECT * FROM {table}' > /dev/null"]


# ---------------------------------------------------------------- measuring (parent)


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, peak MB of the process tree's summed RSS, client CPU seconds) of one command.

    CPU time (user + system of the tree, from wait4) is reported beside wall time because this
    machine is shared: under contention wall time is noisy, CPU time much less so.
    """
    import psutil

    start = time.perf_counter()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    root = psutil.Process(proc.pid)
    status = usage = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Not wait4's ru_maxrss: Linux carries it across exec from the (v)forking parent, so a child of this
    # driver would report the driver's own peak (the TPC-H generation) whatever it did itself.
    if proc.returncode != 0:
        out.seek(0)
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({proc.returncode}):\n{out.read().decode()[-2000:]}")
    return wall, peak / 2**20, usage.ru_utime + usage.ru_stime


def candidate_cmd(name: str, db: str, table: str, out: Path) -> list[str]:
    python = str(BENCH_VENV / "bin" / "python") if name == "connectorx" else sys.executable
    return [python, str(Path(__file__).resolve()), "--child", name, db, table, str(out)]


def bench_venv() -> None:
    if (BENCH_VENV / "bin" / "python").exists():
        return
    uv = ROOT / ".venv" / "bin" / "uv"
    subprocess.run([str(uv), "venv", "-q", "-p", sys.executable, str(BENCH_VENV)], check=True)
    subprocess.run([str(uv), "pip", "install", "-q", *BENCH_VENV_PINS], check=True,
                   env={**os.environ, "VIRTUAL_ENV": str(BENCH_VENV)})


def check_dagspec(db: str, table: str, out: Path) -> tuple[int, str]:
    """Row count and sum(l_extendedprice) of the staged partition, which must equal the database's."""
    import duckdb

    files = sorted(str(p) for p in out.rglob("part-*.parquet"))
    got = duckdb.sql(f"SELECT count(*), sum(l_extendedprice)::VARCHAR FROM read_parquet({files!r})").fetchone()
    if db == "postgres":
        import psycopg

        with psycopg.connect("host=127.0.0.1 user=postgres dbname=ds_extract_bench") as c:
            want = c.execute(f"SELECT count(*), sum(l_extendedprice)::text FROM {table}").fetchone()
    else:
        import pymysql

        c = pymysql.connect(host="127.0.0.1", user="root", database="ds_extract_bench")
        with c.cursor() as cur:
            cur.execute(f"SELECT count(*), CAST(sum(l_extendedprice) AS CHAR) FROM {table}")
            want = cur.fetchone()
        c.close()
    if (got[0], str(got[1])) != (want[0], str(want[1])):
        raise AssertionError(f"dagspec staged {got}, the database has {want}")
    return got[0], str(got[1])


def bench_database(db: str, work: Path, rounds: int, skip: set[str]) -> dict:
    base, double = "lineitem", "lineitem_x2"
    names = [n for n in ("dagspec", "duckdb", "connectorx", "pandas") if n not in skip]
    results: dict[str, dict] = {}
    # Interleaved rounds: a noisy neighbour slows every candidate alike, not one.
    for r in range(rounds):
        for name in ["wire", *names]:
            if name == "pandas" and r > 0:
                continue  # one pandas run is enough to show the gap (and its 9 GB peak)
            out = work / f"{db}-{name}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            cmd = wire_command(db, base) if name == "wire" else candidate_cmd(name, db, base, out)
            wall, peak, cpu = measure(cmd)
            if name == "dagspec":
                rows, total = check_dagspec(db, base, out)
                results.setdefault("check", {"rows": rows, "sum_extendedprice": total})
            slot = results.setdefault(name, {"wall": [], "peak_mb": [], "cpu": []})
            slot["wall"].append(wall)
            slot["peak_mb"].append(peak)
            slot["cpu"].append(cpu)
            print(f"  {db:9} {name:11} round {r + 1}: {wall:7.1f} s {peak:8.0f} MB {cpu:7.1f} s CPU",
                  file=sys.stderr, flush=True)
            shutil.rmtree(out, ignore_errors=True)
    out = work / f"{db}-dagspec-x2"
    out.mkdir(parents=True, exist_ok=True)
    wall, peak, cpu = measure(candidate_cmd("dagspec", db, double, out))
    rows, _ = check_dagspec(db, double, out)
    results["dagspec_x2"] = {"wall": [wall], "peak_mb": [peak], "cpu": [cpu], "rows": rows}
    print(f"  {db:9} dagspec x2   : {wall:7.1f} s {peak:8.0f} MB ({rows} rows)", file=sys.stderr, flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return results


LABELS = {
    "wire": "COPY/SELECT -> /dev/null (reference)",
    "dagspec": "dagspec extract -> Parquet partition",
    "duckdb": "DuckDB scanner -> Parquet",
    "connectorx": "ConnectorX -> Arrow -> Parquet",
    "pandas": "pandas.read_sql + to_parquet",
    "dagspec_x2": "dagspec extract, table x2",
}


def report(db: str, res: dict) -> list[str]:
    best = {k: min(v["wall"]) for k, v in res.items() if isinstance(v, dict) and "wall" in v}
    peak = {k: max(v["peak_mb"]) for k, v in res.items() if isinstance(v, dict) and "peak_mb" in v}
    fastest_parquet = min(v for k, v in best.items() if k not in ("wire", "dagspec_x2"))
    d = best["dagspec"]
    lines = [f"\n{db}: rows={res['check']['rows']:,} sum(l_extendedprice)={res['check']['sum_extendedprice']} (dagspec checked)",
             f"{'path':40} {'best s':>8} {'all runs s':>22} {'peak MB':>9} {'CPU s':>7} {'time / dagspec':>15}"]
    for k in ("wire", "dagspec", "duckdb", "connectorx", "pandas", "dagspec_x2"):
        if k not in best:
            continue
        runs = ", ".join(f"{w:.1f}" for w in res[k]["wall"])
        cpu = min(res[k]["cpu"])
        lines.append(f"{LABELS[k]:40} {best[k]:8.1f} {runs:>22} {peak[k]:9.0f} {cpu:7.1f} {best[k] / d:14.2f}x")
    checks = []
    if "pandas" in best:
        checks.append((f"dagspec >= {TARGETS['pandas_speedup']}x faster than pandas", best["pandas"] / d,
                       best["pandas"] / d >= TARGETS["pandas_speedup"]))
    if "connectorx" in best:
        checks.append(("dagspec faster than ConnectorX", best["connectorx"] / d, d < best["connectorx"]))
    checks.append((f"dagspec within {TARGETS['vs_fastest']}x of the fastest Parquet path", d / fastest_parquet,
                   d / fastest_parquet <= TARGETS["vs_fastest"]))
    checks.append((f"dagspec peak < {TARGETS['peak_mb']} MB", peak["dagspec"], peak["dagspec"] < TARGETS["peak_mb"]))
    growth = peak["dagspec_x2"] / peak["dagspec"]
    checks.append(("dagspec peak flat when the table doubles (x2 / x1)", growth, growth <= 1.15))
    for label, value, ok in checks:
        lines.append(f"  [{'ok' if ok else 'MISS'}] {label}: {value:.2f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["postgres", "mysql"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--skip", action="append", default=[], help="candidate to leave out (e.g. pandas)")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--child", nargs=4, metavar=("NAME", "DB", "TABLE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        name, db, table, out = args.child
        CANDIDATES[name](db, table, Path(out))
        return

    import extract_data

    print("preparing data (skipped when already loaded) ...", file=sys.stderr, flush=True)
    extract_data.main()
    if "connectorx" not in args.skip:
        bench_venv()
    all_results, lines = {}, []
    with tempfile.TemporaryDirectory(prefix="ds_extract_bench_") as tmp:
        for db in ("postgres", "mysql"):
            if args.only and db != args.only:
                continue
            print(f"{db}: {args.rounds} interleaved rounds", file=sys.stderr, flush=True)
            all_results[db] = bench_database(db, Path(tmp), args.rounds, set(args.skip))
            lines += report(db, all_results[db])
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=1))


if __name__ == "__main__":
    main()
