"""Objects benchmark: a CSV export in S3 (moto's server on loopback) into a Parquet partition.

    make bench-objects          (or: .venv/bin/python bench/objects_bench.py [--rows 2000000])

Side by side, each in its own process (wall time measured outside, peak RSS of the process):
  download     the object's bytes to nowhere in one streamed GET (boto3): what the server can send
  dagspec      the `objects` source (pyarrow dataset scan, bounded read-ahead) into Store.write_partition
  pyarrow      read the whole CSV into an Arrow table, then pq.write_table (fast, holds it all)
  pandas       boto3 get_object + pandas.read_csv + to_parquet (what a hand-written operator does)
then dagspec again on an object twice as large: its memory must not grow with the object.
dagspec's partition is checked: row count and sum(amount) equal what was generated.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

from peak import peak_mb

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench-objects"

MOTO = """
import sys
from moto.server import ThreadedMotoServer
s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
s.start()
print(s.get_host_and_port()[1], flush=True)
sys.stdin.read()
"""

CONN = {"conn_type": "aws", "login": "bench", "password": "bench-secret", "extra": {"region_name": "us-east-1"}}


def conn(endpoint: str) -> dict:
    return {**CONN, "extra": {**CONN["extra"], "endpoint_url": endpoint}}


# ---------------------------------------------------------------- candidates (each runs in a child process)


def run_download(endpoint: str, key: str, out: str) -> dict:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench-secret",
                      region_name="us-east-1")
    body, n = s3.get_object(Bucket=BUCKET, Key=key)["Body"], 0
    while chunk := body.read(8 << 20):
        n += len(chunk)
    return {"bytes": n}


def run_dagspec(endpoint: str, key: str, out: str) -> dict:
    os.makedirs(out, exist_ok=True)
    from datetime import date, datetime

    from dagspec.connections import parse_connection
    from dagspec.sources import read_batches
    from dagspec.spec.model import ObjectSource
    from dagspec.store import Store
    from dagspec.windows import Batch

    src = ObjectSource(kind="objects", conn_id="bench", path=f"s3://{BUCKET}/{key}", format="csv",
                       column_types={"amount": "decimal(12,2)"})
    day = datetime(2025, 3, 1, tzinfo=UTC)
    schema, chunks = read_batches(parse_connection("bench", json.dumps(conn(endpoint))), src,
                                  Batch(date(2025, 3, 1), day, day), 100_000)
    info = Store(out).write_partition("raw", "events", date(2025, 3, 1), schema, chunks)
    return {"rows": info.rows, "files": info.files}


def run_pyarrow(endpoint: str, key: str, out: str) -> dict:
    os.makedirs(out, exist_ok=True)
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from dagspec.connections import parse_connection
    from dagspec.filesystems import filesystem

    fs = filesystem(parse_connection("bench", json.dumps(conn(endpoint))))
    with fs.open_input_stream(f"{BUCKET}/{key}", buffer_size=16 << 20) as fh:
        table = pacsv.read_csv(fh)
    pq.write_table(table, os.path.join(out, "x.parquet"), compression="zstd")
    return {"rows": table.num_rows}


def run_pandas(endpoint: str, key: str, out: str) -> dict:
    os.makedirs(out, exist_ok=True)
    import boto3
    import pandas as pd

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench-secret",
                      region_name="us-east-1")
    df = pd.read_csv(s3.get_object(Bucket=BUCKET, Key=key)["Body"])
    df.to_parquet(os.path.join(out, "x.parquet"))
    return {"rows": len(df)}


CANDIDATES = {"download": run_download, "dagspec": run_dagspec, "pyarrow": run_pyarrow, "pandas": run_pandas}


def child(name: str, endpoint: str, key: str, out: str) -> None:
    # Same imports for everyone before the clock starts: the table compares the work, not start-up.
    import boto3  # noqa: F401
    import pandas  # noqa: F401
    import pyarrow.csv
    import pyarrow.dataset
    import pyarrow.parquet  # noqa: F401

    import dagspec.sources.objects
    import dagspec.store  # noqa: F401

    before = peak_mb()
    start = time.perf_counter()
    result = CANDIDATES[name](endpoint, key, out) if name != "baseline" else {}
    result["wall"] = time.perf_counter() - start
    result["peak_mb"] = peak_mb()
    result["base_mb"] = before
    print(json.dumps(result))


# ---------------------------------------------------------------- driver


def make_csv(path: Path, rows: int) -> str:
    """Deterministic events: id, customer, timestamp, status, amount (2 decimals), comment. Returns sum(amount)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(7)
    cents = rng.integers(100, 1_000_000, rows)
    table = pa.table({
        "id": np.arange(rows, dtype=np.int64),
        "customer_id": rng.integers(1, 50_000, rows),
        "ordered_at": pa.array(np.datetime64("2025-03-01T00:00:00") + rng.integers(0, 86_400, rows).astype("timedelta64[s]")),
        "status": pc.take(pa.array(["placed", "shipped", "delivered", "cancelled"]), pa.array(rng.integers(0, 4, rows))),
        "amount": pa.array([f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]),
        "comment": pc.take(pa.array([f"note {i} lorem ipsum" for i in range(100)]), pa.array(rng.integers(0, 100, rows))),
    })
    pacsv.write_csv(table, path)
    total = int(cents.sum())
    return f"{total // 100}.{total % 100:02d}"


def measure(name: str, endpoint: str, key: str, out: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", name, endpoint, key, out], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "include")})
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(result: dict, rows: int, total: str) -> bool:
    import duckdb

    got = duckdb.sql(f"SELECT count(*), sum(amount)::VARCHAR FROM read_parquet({result['files']!r})").fetchone()
    return got == (rows, total)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--child", nargs=4)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    import boto3

    server = subprocess.Popen([sys.executable, "-c", MOTO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    out = tempfile.mkdtemp(prefix="bench-objects-")
    try:
        endpoint = f"http://127.0.0.1:{int(server.stdout.readline())}"
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench-secret",
                          region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        sums, sizes = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            for key, rows in (("events.csv", args.rows), ("events_2x.csv", 2 * args.rows)):
                path = Path(tmp) / key
                sums[key] = make_csv(path, rows)
                sizes[key] = path.stat().st_size
                s3.upload_file(str(path), BUCKET, key)
        print(f"CSV object: {args.rows:,} rows, {sizes['events.csv'] / 1e6:.0f} MB in moto's S3 server on loopback "
              f"({os.cpu_count()} cores)\n")
        results = {}
        for name in ["baseline", *CANDIDATES]:
            results[name] = measure(name, endpoint, "events.csv", f"{out}/{name}")
        ok = check(results["dagspec"], args.rows, sums["events.csv"])
        double = measure("dagspec", endpoint, "events_2x.csv", f"{out}/dagspec2x")
        ok2 = check(double, 2 * args.rows, sums["events_2x.csv"])
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        import shutil

        shutil.rmtree(out, ignore_errors=True)

    base = results["dagspec"]
    grown = {name: r["peak_mb"] - r["base_mb"] for name, r in [*results.items(), ("dagspec 2x", double)]}
    print(f"{'candidate':<12} {'wall s':>8} {'peak MB':>8} {'+MB work':>9} {'wall / dagspec':>15} {'+MB / dagspec':>14}")
    for name, r in [*results.items(), ("dagspec 2x", double)]:
        if name == "baseline":
            print(f"{name:<12} {'':>8} {r['peak_mb']:>8.0f}   (interpreter + imports, before any work)")
            continue
        print(f"{name:<12} {r['wall']:>8.2f} {r['peak_mb']:>8.0f} {grown[name]:>9.0f} {r['wall'] / base['wall']:>15.2f} "
              f"{grown[name] / max(grown['dagspec'], 1):>14.2f}")
    print(f"\nchecks: rows and sum(amount) exact: {ok} (1x), {ok2} (2x); "
          f"pandas / dagspec wall: {results['pandas']['wall'] / base['wall']:.2f}x; "
          f"dagspec / download wall: {base['wall'] / results['download']['wall']:.2f}x; "
          f"memory for the work, 2x / 1x: {grown['dagspec 2x'] / max(grown['dagspec'], 1):.2f}")
    if not (ok and ok2):
        raise SystemExit("dagspec's partition does not match the generated data")


if __name__ == "__main__":
    main()
