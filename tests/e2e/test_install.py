"""dagspec as a team that already runs Airflow gets it: a wheel with extras in a fresh venv beside a clean Airflow.

Nothing of this repository is on the path there: the loader files come from `dagspec init`, the plugin from
the package's entry point, and the folders from the installed defaults (beside $AIRFLOW_HOME/dags).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".venv" / "bin" / "uv"
DAY = "2025-03-01"


def _run(args: list, env: dict, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    assert res.returncode == 0, f"{args}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_the_wheel_with_extras_runs_an_example_in_a_clean_airflow(tmp_path):
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("AIRFLOW", "_AIRFLOW", "DAGSPEC", "VIRTUAL_ENV", "PYTHONPATH"))}
    # Built from a copy: setuptools writes an egg-info into the source tree, which the repository's editable
    # install would then see as a second dagspec (its Airflow plugin registered twice).
    src = tmp_path / "src"
    shutil.copytree(ROOT / "include", src / "include", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", src / "pyproject.toml")
    _run([UV, "build", "--wheel", "--out-dir", tmp_path / "dist", src], base_env, tmp_path)
    wheel = next((tmp_path / "dist").glob("dagspec-*.whl"))
    venv = tmp_path / "venv"
    _run([UV, "venv", "-q", "--python", sys._base_executable, venv], base_env, tmp_path)
    # The lock as constraints: the versions this repository is tested with, and uv's cache.
    _run([UV, "pip", "install", "-q", "--python", venv / "bin" / "python", f"{wheel}[aws,gcp,ml,sheets]",
          "apache-airflow==3.3.2", "-c", ROOT / "requirements.txt"], base_env, tmp_path, timeout=900)
    home = tmp_path / "airflow"
    env = {**base_env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "PATH": f"{venv / 'bin'}:{base_env.get('PATH', '')}"}
    bin_ = venv / "bin"
    where = _run([bin_ / "python", "-c", "import dagspec, dagspec.paths as p; print(dagspec.__file__); "
                  "print(p.definitions_dir()); print(p.data_home())"], env, tmp_path).stdout.split()
    assert str(venv) in where[0] and where[1:] == [str(home / "dags" / "definitions"), str(home / "dagspec-data")]
    _run([bin_ / "airflow", "db", "migrate"], env, tmp_path)
    _run([bin_ / "dagspec", "init", home / "dags"], env, tmp_path)
    _run([bin_ / "dagspec", "sample-data", "--end", "2025-12-31"], env, tmp_path)  # DAY is in it
    plugins = json.loads(_run([bin_ / "airflow", "plugins", "--output", "json"], env, tmp_path).stdout or "[]")
    assert any(p.get("name") == "dagspec" for p in plugins), plugins
    _run([bin_ / "airflow", "dags", "test", "example_orders", DAY], env, tmp_path)

    con = duckdb.connect(str(home / "dagspec-data" / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT CAST(batch_date AS VARCHAR), order_id FROM example.orders").fetchall()
    finally:
        con.close()
    days = {d for d, _ in rows}
    assert len(days) == 1, days  # the one data interval the test run processed
    day = days.pop()
    with sqlite3.connect(home / "dagspec-data" / "source.db") as con:
        want = sorted(r[0] for r in con.execute(
            "SELECT order_id FROM orders WHERE substr(ordered_at, 1, 10) = ?", (day,)))
    assert sorted(o for _, o in rows) == want and len(want) > 100
