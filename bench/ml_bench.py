"""Model steps at scale: train + evaluate + register on 1M rows; score 1M and 5M rows (throughput, peak memory);
monitor each scored batch (prediction drift, volume, feature stats) next to the scoring it follows.

One command: `make bench-ml`. Data is made in a scratch DuckDB warehouse with SQL (deterministic
hashes, a real signal in the label). Each scoring size runs in its own process so its peak RSS is
its own; scoring streams in chunks, so peak memory should not grow with the number of rows. The monitor
of a size runs in its own process right after that size's scoring (the next scoring replaces the batch);
its target is under 25% of the scoring time, with flat memory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peak import peak_mb

TRAIN_ROWS = int(os.environ.get("ML_BENCH_TRAIN_ROWS", 1_000_000))
SCORE_ROWS = [int(x) for x in os.environ.get("ML_BENCH_SCORE_ROWS", "1000000,5000000").split(",")]
DAY = datetime(2025, 6, 1, tzinfo=UTC)
OUTPUTS = {"table": {"table": {"schema": "bench", "table": "scores"}},
           "export": {"export": {"schema": "bench", "table": "scores"}}}

FEATURES = [{"column": "amount", "type": "numeric"}, {"column": "channel", "type": "categorical"},
            {"column": "segment", "type": "categorical"}, {"column": "country", "type": "categorical"}]


def pipeline(score_rows: int = 0):
    from dagspec.spec import parse_definition

    doc = {"dag_id": "ml_bench", "start_date": "2025-01-01", "steps": [
        {"id": "train", "kind": "train", "model": "bench_lost", "estimator": "logistic_regression",
         "params": {"max_iter": 300}, "features": FEATURES, "target": "is_lost",
         "data": {"table": {"schema": "bench", "table": "train"}, "time_column": "ordered_at", "days": 90},
         "split": {"by": "time", "column": "ordered_at", "holdout": 0.2}, "min_rows": 1000},
        {"id": "evaluate", "kind": "evaluate", "input": "train"},
        {"id": "promote", "kind": "promote", "input": "evaluate", "primary": "roc_auc", "minimums": {"roc_auc": 0.55}},
        {"id": "score", "kind": "score", "model": "bench_lost", "after": [],
         "data": {"table": {"schema": "bench", "table": "score"}, "time_column": "ordered_at"},
         "keys": ["order_id"], "output": OUTPUTS[os.environ.get("ML_BENCH_OUTPUT", "table")], "chunk_rows": 100_000},
        {"id": "monitor", "kind": "monitor", "model": "bench_lost", "input": "score"},
    ]}
    return parse_definition(json.dumps(doc).encode(), "ml_bench.json")


def make_data(home: Path) -> None:
    import duckdb

    def rows(n: int, start: str, span_seconds: float) -> str:
        return f"""
        SELECT order_id, customer_id, ordered_at, channel, amount, segment, country,
               CAST((hash(order_id, 5) % 10000) / 10000.0 < 0.04 + CASE channel WHEN 'partner' THEN 0.2
                    WHEN 'store' THEN 0.0 ELSE 0.05 END + 0.12 * amount / 500 AS INTEGER) AS is_lost
        FROM (SELECT i AS order_id, i % 50000 AS customer_id,
                     TIMESTAMP '{start}' + to_microseconds(CAST(i * {span_seconds * 1e6 / n} AS BIGINT)) AS ordered_at,
                     ['web', 'mobile', 'store', 'partner'][CAST(1 + hash(i, 1) % 4 AS BIGINT)] AS channel,
                     5 + (hash(i, 2) % 49500) / 100.0 AS amount,
                     ['consumer', 'corporate', 'small_business'][CAST(1 + hash(i, 3) % 3 AS BIGINT)] AS segment,
                     ['US', 'DE', 'FR', 'GB', 'NL', 'ES', 'IT', 'SE', 'PL', 'CA'][CAST(1 + hash(i, 4) % 10 AS BIGINT)] AS country
              FROM range({n}) t(i))"""

    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA bench")
    end = DAY.strftime("%Y-%m-%d")
    start = (DAY - timedelta(days=90)).strftime("%Y-%m-%d")
    con.execute(f"CREATE TABLE bench.train AS {rows(TRAIN_ROWS, start, 90 * 86400)}")
    con.execute(f"CREATE TABLE bench.score AS {rows(max(SCORE_ROWS), end, 86400)}")
    con.close()


def child_train() -> dict:
    from dagspec.runner import run_step

    p = pipeline()
    out = {}
    for step in ("train", "evaluate", "promote"):
        t0 = time.perf_counter()
        result = run_step(p, step, DAY - timedelta(days=7), DAY)
        out[step] = time.perf_counter() - t0
        if step == "train":
            out["rows_train"], out["rows_holdout"] = result["rows_train"], result["rows_holdout"]
            out["roc_auc"] = result["metrics"]["roc_auc"]
        if step == "promote":
            out["promoted"] = result["promoted"]
    out["peak_mb"] = peak_mb()
    return out


def child_score(rows: int) -> dict:
    from dagspec.runner import run_step

    p = pipeline()
    # All score rows lie in one day, spread evenly: the first `rows` of them fall in this sub-day window (one batch).
    end = DAY + timedelta(microseconds=int(rows * 86400e6 / max(SCORE_ROWS)))
    # Warm-up on the first 1,000 rows: imports, registry client and model load are not scoring work.
    t0 = time.perf_counter()
    run_step(p, "score", DAY, DAY + timedelta(microseconds=int(1000 * 86400e6 / max(SCORE_ROWS))))
    setup = time.perf_counter() - t0
    baseline = peak_mb()
    t0 = time.perf_counter()
    result = run_step(p, "score", DAY, end)
    seconds = time.perf_counter() - t0
    return {"rows": sum(result["rows"].values()), "seconds": seconds, "peak_mb": peak_mb(), "baseline_mb": baseline,
            "setup": setup}


def child_monitor(rows: int) -> dict:
    from dagspec.runner import run_step

    p = pipeline()
    end = DAY + timedelta(microseconds=int(rows * 86400e6 / max(SCORE_ROWS)))
    t_process = time.perf_counter()
    # Warm-up: the same batch once (imports, registry client, the version's reference); then the measured run.
    run_step(p, "monitor", DAY, end)
    baseline = peak_mb()
    t0 = time.perf_counter()
    result = run_step(p, "monitor", DAY, end)
    seconds = time.perf_counter() - t0
    record = next(iter(result["batches"].values()))
    return {"rows": record["volume"]["rows"], "seconds": seconds, "peak_mb": peak_mb(), "baseline_mb": baseline,
            "process_seconds": time.perf_counter() - t_process, "psi": record["prediction"]["psi"],
            "breached": result["breached"]}


def run_child(home: Path, *args: str) -> dict:
    env = {**os.environ, "DAGSPEC_HOME": str(home), "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if len(args) > 2:
        env["ML_BENCH_OUTPUT"] = args[2]
    done = subprocess.run([sys.executable, __file__, *args[:2]], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-5000:])
        raise SystemExit(f"child {args} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="dagspec-ml-bench-"))
    try:
        t0 = time.perf_counter()
        make_data(home)
        print(f"data: {TRAIN_ROWS:,} training rows, {max(SCORE_ROWS):,} scoring rows in {time.perf_counter() - t0:.1f}s "
              f"({home})", flush=True)
        train = run_child(home, "train")
        scores, monitors = {}, {}
        for mode in ("export", "table"):
            for n in SCORE_ROWS:
                scores[(mode, n)] = run_child(home, "score", str(n), mode)
                monitors[(mode, n)] = run_child(home, "monitor", str(n), mode)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    print(f"\ntrain + evaluate + register ({train['rows_train']:,} train / {train['rows_holdout']:,} holdout rows, "
          f"logistic regression, one-hot on 3 columns)")
    print(f"{'step':<12}{'seconds':>10}")
    for step in ("train", "evaluate", "promote"):
        print(f"{step:<12}{train[step]:>10.1f}")
    print(f"{'total':<12}{train['train'] + train['evaluate'] + train['promote']:>10.1f}   "
          f"roc_auc={train['roc_auc']:.3f} promoted={train['promoted']} peak RSS={train['peak_mb']:.0f} MB")
    print("\nscore: champion predictions in chunks of 100,000 rows -> Parquet in the store (export), "
          "or -> Parquet -> DuckDB table, batch replaced in one transaction (table)")
    print(f"{'output':<8}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>13}{'above warm-up MB':>18}"
          f"{'warm-up s':>11}")
    for (mode, _n), s in scores.items():
        print(f"{mode:<8}{s['rows']:>12,}{s['seconds']:>10.1f}{s['rows'] / s['seconds']:>12,.0f}{s['peak_mb']:>13.0f}"
              f"{s['peak_mb'] - s['baseline_mb']:>18.0f}{s['setup']:>11.1f}")
    if len(SCORE_ROWS) >= 2:
        lo, hi = min(SCORE_ROWS), max(SCORE_ROWS)
        print(f"\nratios {hi:,} / {lo:,} rows (x{hi / lo:.0f} rows; flat peak memory means bounded):")
        for mode in ("export", "table"):
            small, big = scores[(mode, lo)], scores[(mode, hi)]
            above = (big['peak_mb'] - big['baseline_mb']) / max(small['peak_mb'] - small['baseline_mb'], 1)
            print(f"  {mode:<7} time x{big['seconds'] / small['seconds']:.2f}   peak RSS x{big['peak_mb'] / small['peak_mb']:.2f}"
                  f"   above warm-up x{above:.2f}")


    print("\nmonitor: prediction PSI, row volume, feature nulls and ranges of the scored batch, in chunks of "
          "500,000 rows, from the store (export) or the DuckDB table (table); beside the scoring of the same batch")
    print(f"{'output':<8}{'rows':>12}{'score s':>9}{'monitor s':>11}{'time ratio':>12}{'score peak MB':>15}"
          f"{'monitor peak MB':>17}{'monitor above warm-up MB':>26}{'monitor process s':>19}")
    for key, m in monitors.items():
        s = scores[key]
        print(f"{key[0]:<8}{m['rows']:>12,}{s['seconds']:>9.1f}{m['seconds']:>11.2f}{m['seconds'] / s['seconds']:>11.1%} "
              f"{s['peak_mb']:>14.0f}{m['peak_mb']:>17.0f}{m['peak_mb'] - m['baseline_mb']:>26.0f}"
              f"{m['process_seconds']:>19.1f}")
    if len(SCORE_ROWS) >= 2:
        lo, hi = min(SCORE_ROWS), max(SCORE_ROWS)
        for mode in ("export", "table"):
            small, big = monitors[(mode, lo)], monitors[(mode, hi)]
            print(f"  monitor {mode:<7} {hi:,} / {lo:,} rows: time x{big['seconds'] / small['seconds']:.2f}   "
                  f"peak RSS x{big['peak_mb'] / small['peak_mb']:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        print(json.dumps(child_train()))
    elif len(sys.argv) > 1 and sys.argv[1] == "score":
        print(json.dumps(child_score(int(sys.argv[2]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "monitor":
        print(json.dumps(child_monitor(int(sys.argv[2]))))
    else:
        main()
