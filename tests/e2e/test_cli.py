"""The `dagspec` command as a user runs it: real processes, real exit codes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.expected import expected_revenue, source_orders, warehouse_rows

ROOT = Path(__file__).resolve().parents[2]
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))


def dagspec(*args: str, env_home: Path | None = None) -> subprocess.CompletedProcess:
    env = os.environ.copy()
    if env_home is not None:
        env["DAGSPEC_HOME"] = str(env_home)
    return subprocess.run([DAGSPEC, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_validate_ok_and_one_line_per_problem(tmp_path):
    ok = dagspec("validate")
    assert ok.returncode == 0 and ok.stdout == "" and "4 valid definition(s), 0 problem(s)" in ok.stderr
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "good.json").write_text((ROOT / "dags/definitions/orders_daily.json").read_text())
    (folder / "bad.json").write_text(json.dumps({"dag_id": "b", "start_date": "2025-02-30", "retries": "x",
                                                 "steps": []}))
    res = dagspec("validate", str(folder))
    assert res.returncode == 1
    lines = res.stdout.strip().splitlines()
    assert lines == [
        "definitions/bad.json: $.start_date: '2025-02-30' is not a date (fix: write dates as YYYY-MM-DD, e.g. \"2025-01-01\")",
        "definitions/bad.json: $.retries: expected a whole number, got 'x' (fix: write a number without quotes, e.g. 3)",
        "definitions/bad.json: $.steps: needs at least 1 item(s) (fix: add a step)",
    ]
    assert "1 valid definition(s), 3 problem(s)" in res.stderr


def test_schema_command_prints_the_published_schema():
    res = dagspec("schema")
    assert res.returncode == 0
    assert json.loads(res.stdout) == json.loads((ROOT / "include/schema/dagspec.schema.json").read_text())
    assert dagspec("schema", "--check").returncode == 0


def test_list_shows_each_definition():
    res = dagspec("list")
    assert res.returncode == 0 and "orders_daily" in res.stdout and "customers_snapshot" in res.stdout


def test_run_one_date_in_process(data_home):
    res = dagspec("run", "orders_daily", "--date", "2025-03-01", env_home=data_home)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "orders_daily: 1 date(s) done" in res.stdout
    from datetime import date

    assert warehouse_rows(data_home / "warehouse.duckdb", "SELECT * FROM analytics.daily_revenue ORDER BY channel") == \
        expected_revenue(data_home / "source.db", date(2025, 3, 1))


def test_run_unknown_dag_and_bad_date_fail_clearly(data_home):
    res = dagspec("run", "nope", "--date", "2025-03-01", env_home=data_home)
    assert res.returncode == 2 and "no definition with dag_id 'nope'" in res.stderr
    res = dagspec("run", "orders_daily", "--date", "03/01/2025", env_home=data_home)
    assert res.returncode == 2 and "not a date" in res.stderr


def test_run_uses_connections_defined_in_airflow(airflow_db, data_home, tmp_path):
    """`airflow connections add` is how people define connections: the command must see them too."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    lake = tmp_path / "lake"
    added = subprocess.run([airflow, "connections", "add", "dagspec_store", "--conn-type", "fs",
                            "--conn-extra", json.dumps({"path": str(lake)})], capture_output=True, text=True)
    assert added.returncode == 0, added.stderr[-2000:]
    try:
        res = dagspec("run", "orders_daily", "--date", "2025-03-01", env_home=data_home)
        assert res.returncode == 0, res.stderr[-3000:]
        manifest = json.loads((lake / "raw/orders/batch_date=2025-03-01/_manifest.json").read_text())
        from datetime import date

        assert manifest["rows"] == len(source_orders(data_home / "source.db", date(2025, 3, 1)))
        assert not (data_home / "store" / "raw").exists()  # not the embedded default
    finally:
        subprocess.run([airflow, "connections", "delete", "dagspec_store"], capture_output=True)
