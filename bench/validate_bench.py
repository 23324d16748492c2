"""Validation and transform pushdown on TPC-H lineitem SF1 (6,001,215 rows), side by side in one run.

1. A 10-expectation suite (nulls, ranges, sets, a compound key's uniqueness, row count, a mean):
   dagspec's default path (DuckDB over the staged Parquet, GX result format) vs Great Expectations'
   pandas path (load the batch into a DataFrame, then validate). Also dagspec on twice the rows,
   to show memory stays flat.
2. A daily revenue aggregation: pushed down to DuckDB vs the same in pandas.

Each measurement runs in its own process; time is wall clock inside it (imports excluded), peak
memory is the process's max RSS (imports included). Data is generated once with DuckDB's tpch
extension (the duckdb-extension-tpch wheel) and cached under .local/bench/.

    .venv/bin/python bench/validate_bench.py        (or: make bench-validate)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from peak import peak_mb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".local" / "bench" / "tpch"
SF1 = DATA / "lineitem_sf1.parquet"
SF1_SHIFTED = DATA / "lineitem_sf1_shifted.parquet"  # same rows, order keys moved: x2 with a still-unique key
ROWS_SF1 = 6_001_215

SUITE = [
    ("expect_table_row_count_to_be_between", {"min_value": 1_000_000, "max_value": 20_000_000}),
    ("expect_column_values_to_not_be_null", {"column": "l_orderkey"}),
    ("expect_column_values_to_not_be_null", {"column": "l_partkey"}),
    ("expect_column_values_to_be_between", {"column": "l_quantity", "min_value": 1, "max_value": 50}),
    ("expect_column_values_to_be_between", {"column": "l_discount", "min_value": 0, "max_value": 0.1}),
    ("expect_column_values_to_be_in_set", {"column": "l_returnflag", "value_set": ["A", "N", "R"]}),
    ("expect_column_values_to_be_in_set", {"column": "l_linestatus", "value_set": ["O", "F"]}),
    ("expect_column_values_to_be_in_set", {"column": "l_shipmode", "value_set": [
        "AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"]}),
    ("expect_compound_columns_to_be_unique", {"column_list": ["l_orderkey", "l_linenumber"]}),
    ("expect_column_mean_to_be_between", {"column": "l_extendedprice", "min_value": 30_000, "max_value": 45_000}),
]

REVENUE_SQL = """SELECT l_shipdate AS day, sum(l_extendedprice * (1 - l_discount)) AS revenue, count(*) AS lines
FROM {rel} GROUP BY l_shipdate ORDER BY l_shipdate"""


def generate() -> None:
    if SF1.exists() and SF1_SHIFTED.exists():
        return
    import duckdb
    import duckdb_extension_tpch

    DATA.mkdir(parents=True, exist_ok=True)
    ext = next(Path(duckdb_extension_tpch.__file__).parent.glob("extensions/*/tpch.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"LOAD '{ext}'")
    print("generating TPC-H SF1 lineitem with DuckDB's tpch extension ...", flush=True)
    con.execute("CALL dbgen(sf = 1)")
    con.execute(f"COPY lineitem TO '{SF1}' (FORMAT parquet, ROW_GROUP_SIZE 250000)")
    con.execute(f"COPY (SELECT * REPLACE (l_orderkey + 100000000 AS l_orderkey) FROM lineitem) TO '{SF1_SHIFTED}' "
                "(FORMAT parquet, ROW_GROUP_SIZE 250000)")
    con.close()


# -- the measured bodies (each runs in a child process) --------------------------------------------------

def _checks():
    from dagspec.spec.suites import Check

    return [Check(t, k, "fail", {}, i) for i, (t, k) in enumerate(SUITE)]


def child_dagspec(files: list[str]) -> dict:
    """dagspec's default path, as the validate stage runs it on a staged batch."""
    import tempfile

    import duckdb

    from dagspec.checks.sql_engine import Evaluator
    from dagspec.stages.validate import DUCKDB_MEMORY

    checks = _checks()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": tmp, "threads": 2})
        listed = ", ".join(f"'{f}'" for f in files)
        results = Evaluator(con, f"read_parquet([{listed}], hive_partitioning = false)").run(checks)
        con.close()
    return {"validate_s": time.perf_counter() - t0, "success": [r["success"] for r in results],
            "rows": results[0]["result"]["observed_value"]}


def _dataframe(files: list[str]):
    """The batch as pandas gets it from a database driver (pandas.read_sql): DECIMAL as float64. Kept as
    Decimal objects instead, every pandas step here is several times slower, so this favours pandas."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f) for f in files])
    floats = pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in table.schema])
    return table.cast(floats).to_pandas()


def child_gx_pandas(files: list[str]) -> dict:
    """Great Expectations' pandas path: the batch into a DataFrame, then GX validates it."""
    from dagspec.checks import gx_engine

    checks = _checks()
    import great_expectations  # noqa: F401  (import cost excluded from the timing, as for dagspec)

    t0 = time.perf_counter()
    df = _dataframe(files)
    t1 = time.perf_counter()
    results = gx_engine.run_pandas(df, checks, "bench")
    t2 = time.perf_counter()
    return {"load_s": t1 - t0, "validate_s": t2 - t1, "success": [r["success"] for r in results],
            "rows": results[0]["result"]["observed_value"]}


def child_agg_duckdb(files: list[str]) -> dict:
    import duckdb

    t0 = time.perf_counter()
    con = duckdb.connect(config={"threads": 2})
    listed = ", ".join(f"'{f}'" for f in files)
    out = con.execute(REVENUE_SQL.format(rel=f"read_parquet([{listed}])")).fetch_arrow_table()
    return {"s": time.perf_counter() - t0, "days": out.num_rows,
            "revenue": round(float(sum(v.as_py() for v in out.column("revenue"))), 2)}


def child_agg_pandas(files: list[str]) -> dict:
    t0 = time.perf_counter()
    df = _dataframe(files)
    df["revenue"] = df["l_extendedprice"] * (1 - df["l_discount"])
    out = df.groupby("l_shipdate").agg(revenue=("revenue", "sum"), lines=("l_orderkey", "size")).sort_index()
    return {"s": time.perf_counter() - t0, "days": len(out), "revenue": round(float(out["revenue"].sum()), 2)}


def measure(name: str, files: list[Path]) -> dict:
    """Run one child; returns its result, with its own peak RSS (MB) as the child measured it."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, __file__, "--child", name, *map(str, files)], stdout=subprocess.PIPE,
                            env=env, cwd=ROOT)
    out = proc.stdout.read()
    _, status, _usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return result


def main() -> None:
    generate()
    one, two = [SF1], [SF1, SF1_SHIFTED]
    print(f"TPC-H lineitem SF1 ({ROWS_SF1:,} rows); each line is its own process\n", flush=True)
    gx = measure("gx_pandas", one)
    ds = measure("dagspec", one)
    ds2 = measure("dagspec", two)
    assert ds["success"] == gx["success"], (ds["success"], gx["success"])
    assert ds["rows"] == gx["rows"] == ROWS_SF1 and ds2["rows"] == 2 * ROWS_SF1
    ad, ap = measure("agg_duckdb", one), measure("agg_pandas", one)
    assert ad["days"] == ap["days"] and abs(ad["revenue"] - ap["revenue"]) < 1e-6 * ad["revenue"]

    gx_total = gx["load_s"] + gx["validate_s"]
    rows = [
        ("validate, 10 expectations", "GX pandas (load + validate)", gx_total, gx["rss_mb"],
         f"load {gx['load_s']:.1f}s + validate {gx['validate_s']:.1f}s"),
        ("", "dagspec default (DuckDB, GX format)", ds["validate_s"], ds["rss_mb"], f"{ds['success'].count(True)}/10 pass"),
        ("", "dagspec default, 2x rows", ds2["validate_s"], ds2["rss_mb"], f"{ds2['rows']:,} rows"),
        ("daily revenue aggregation", "pandas", ap["s"], ap["rss_mb"], f"{ap['days']:,} days"),
        ("", "pushed down to DuckDB", ad["s"], ad["rss_mb"], f"{ad['days']:,} days"),
    ]
    print(f"{'workload':27} {'path':38} {'time s':>8} {'peak MB':>9}  note")
    for w, p, t, m, note in rows:
        print(f"{w:27} {p:38} {t:8.2f} {m:9.0f}  {note}")
    print("\nratios")
    print(f"  validation speed-up, GX pandas path / dagspec:   {gx_total / ds['validate_s']:6.2f}x  (target >= 1)")
    print(f"  validation memory, dagspec / GX pandas path:     {ds['rss_mb'] / gx['rss_mb']:6.2f}   "
          f"(dagspec peak {ds['rss_mb']:.0f} MB, target < 500)")
    print(f"  dagspec memory at 2x rows / at 1x:               {ds2['rss_mb'] / ds['rss_mb']:6.2f}   (flat = ~1)")
    print(f"  pushdown speed-up, pandas / DuckDB:              {ap['s'] / ad['s']:6.2f}x  (target >= 3)")
    print(f"  pushdown memory, DuckDB / pandas:                {ad['rss_mb'] / ap['rss_mb']:6.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        fn = globals()[f"child_{sys.argv[2]}"]
        print(json.dumps({**fn(sys.argv[3:]), "rss_mb": peak_mb()}), flush=True)
    else:
        main()
