"""What ordering a PostgreSQL table extract would cost: the local-store path (DuckDB's postgres scanner,
COPY to Parquet) as it is, and with ORDER BY the primary key or ALL. Prints seconds, peak RSS and the
file's sha256 per run: unordered runs give different bytes, ordered ones the same.

usage: python bench/order_bench.py [SF=0.1] [REPS=3]   (loads TPC-H lineitem into PostgreSQL db `test`,
schema ds_order_bench, once; each run in its own process so peak RSS is its own)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from extract_data import LINEITEM_DDL, tpch_csv

PG = dict(host="127.0.0.1", port=5432, user="postgres", dbname="test")
SCHEMA = "ds_order_bench"
ORDERS = {"none": "", "pk": " ORDER BY l_orderkey, l_linenumber", "all": " ORDER BY ALL"}

ONE = r"""
import hashlib, resource, sys, time
from dagspec.sources import duckdb_scan
con = duckdb_scan.connect("postgres_scanner", {"preserve_insertion_order": False})  # as sources/postgres.py
con.execute(f"ATTACH 'host=127.0.0.1 port=5432 user=postgres dbname=test' AS pg (TYPE postgres, READ_ONLY, "
            f"SCHEMA '{sys.argv[1]}')")
t = time.perf_counter()
con.execute(f"COPY (SELECT * FROM pg.{sys.argv[1]}.lineitem{sys.argv[2]}) TO '{sys.argv[3]}' (FORMAT parquet, COMPRESSION zstd)")
took = time.perf_counter() - t
print(f"{took:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} "
      f"{hashlib.sha256(open(sys.argv[3], 'rb').read()).hexdigest()[:12]}")
"""


def load(sf: float, folder: Path) -> None:
    import psycopg

    with psycopg.connect(**PG, autocommit=True) as c:
        if c.execute("SELECT to_regclass(%s)", [f"{SCHEMA}.lineitem"]).fetchone()[0]:
            return
        path, _, _ = tpch_csv(sf, folder)
        c.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        c.execute(f"CREATE TABLE {SCHEMA}.lineitem {LINEITEM_DDL}")
        with c.cursor().copy(f"COPY {SCHEMA}.lineitem FROM STDIN (DELIMITER '|')") as cp, open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)
        c.execute(f"ALTER TABLE {SCHEMA}.lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber)")
        c.execute(f"VACUUM ANALYZE {SCHEMA}.lineitem")


def main() -> None:
    sf = float(sys.argv[1]) if len(sys.argv) > 1 else 0.1
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as tmp:
        load(sf, Path(tmp))
        print(f"{'order':6} {'s':>6} {'MB':>5}  sha256")
        for _ in range(reps):
            for name, clause in ORDERS.items():  # interleaved: this machine's noise hits every variant alike
                out = subprocess.run([sys.executable, "-c", ONE, SCHEMA, clause, f"{tmp}/{name}.parquet"],
                                     capture_output=True, text=True, check=True).stdout.split()
                print(f"{name:6} {out[0]:>6} {out[1]:>5}  {out[2]}")


if __name__ == "__main__":
    main()
