"""`dagspec import`: a seed DAG creator definition becomes a dagspec pipeline that computes the same table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from dagspec.spec.load import load_definition
from dagspec.store import Store

ROOT = Path(__file__).resolve().parents[2]
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))
SEED = ROOT / "tests" / "definitions" / "seed_orders.json"
DAY = date(2025, 3, 1)


def _dagspec(*args: str, home: Path, sql: Path, definitions: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSPEC_HOME": str(home), "DAGSPEC_SQL_DIR": str(sql)}
    if definitions is not None:
        env["DAGSPEC_DEFINITIONS"] = str(definitions)
    return subprocess.run([DAGSPEC, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _orders(home: Path) -> list[tuple]:
    rows = [(i, datetime(2025, 3, 1) + timedelta(hours=i * 5), "web" if i % 3 else "shop", Decimal(f"{i}.25"))
            for i in range(12)]  # 12 orders over 2025-03-01 .. 03-03
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.orders (id INT, ordered_at TIMESTAMP, channel VARCHAR, amount DECIMAL(10,2))")
    con.executemany("INSERT INTO raw.orders VALUES (?, ?, ?, ?)", rows)
    con.close()
    return rows


def test_an_imported_seed_definition_runs_and_computes_the_seed_table(tmp_path, data_home):
    definitions, sql = tmp_path / "definitions", tmp_path / "sql"
    definitions.mkdir()
    rows = _orders(data_home)
    res = _dagspec("import", str(SEED), "--definitions", str(definitions), "--sql-dir", str(sql), home=data_home,
                   sql=sql)
    assert res.returncode == 0, res.stderr
    report = res.stdout
    for field in ("back_date_from", "batch_size", "template_location_in_ec2", "dag_folder", "table_columns"):
        assert f"  {field}" in report, field  # every field not carried over is named, with why
    assert "dagspec backfill redshift_orders_daily --from 2025-01-15 --to" in report
    written = definitions / "redshift_orders_daily.json"
    pipeline = load_definition(written, sql_dir=sql)  # valid, its SQL file present
    assert [s.kind for s in pipeline.steps] == ["transform", "publish"]
    assert ":from_date" in (sql / "imported" / "redshift_orders_daily.sql").read_text()

    run = _dagspec("run", "redshift_orders_daily", "--date", DAY.isoformat(), home=data_home, sql=sql,
                   definitions=definitions)
    assert run.returncode == 0, run.stdout + run.stderr

    day_rows = [r for r in rows if r[1].date() == DAY]
    want = {}
    for _, _, channel, amount in day_rows:
        n, total = want.get(channel, (0, Decimal(0)))
        want[channel] = (n + 1, total + amount)
    con = duckdb.connect(str(data_home / "warehouse.duckdb"), read_only=True)
    got = con.execute("SELECT order_day, channel, orders, revenue, batch_date FROM analytics.orders_daily "
                      "ORDER BY channel").fetchall()
    con.close()
    assert [(r[1], r[2], Decimal(r[3])) for r in got] == [(c, n, t) for c, (n, t) in sorted(want.items())]
    assert {r[0] for r in got} == {DAY}
    assert {r[4] for r in got} == {DAY}
    # ... and the seed's S3 layout: <schema>/<table>/batch_date=YYYY-MM-DD/ with a manifest.
    part = Store(data_home / "store").partition("analytics", "orders_daily", DAY)
    assert part.rows == len(want) and pq.read_table(part.files[0]).num_rows == len(want)
    assert json.loads(written.read_text())["schedule"] == "0 3 * * *"
