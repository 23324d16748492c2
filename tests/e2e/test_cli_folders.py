"""A team's own folders: every command takes them as options or environment variables, errors name the
absolute folder searched, and validate checks the connections a definition names when it can."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))


def dagspec(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSPEC_") or k == "DAGSPEC_HOME"}
    return subprocess.run([DAGSPEC, *args], capture_output=True, text=True, env={**base, "COLUMNS": "200", **env},
                          cwd=cwd, timeout=300)


def team_repo(tmp_path: Path) -> Path:
    """A definitions repository of a team's own: definitions/ and sql/, nothing of this project's."""
    repo = tmp_path / "team-repo"
    (repo / "definitions").mkdir(parents=True)
    (repo / "sql").mkdir()
    pipeline = json.loads((ROOT / "dags/definitions/orders_daily.json").read_text())
    pipeline["dag_id"] = "team_orders"
    (repo / "definitions" / "team_orders.json").write_text(json.dumps(pipeline))
    for step in pipeline["steps"]:
        if step.get("sql"):
            target = repo / "sql" / step["sql"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text((ROOT / "include/sql" / step["sql"]).read_text())
    return repo


def test_folders_by_option_or_environment(tmp_path):
    repo = team_repo(tmp_path)
    by_option = dagspec("list", "--definitions", str(repo / "definitions"), "--sql-dir", str(repo / "sql"))
    by_env = dagspec("list", DAGSPEC_DEFINITIONS=str(repo / "definitions"), DAGSPEC_SQL_DIR=str(repo / "sql"))
    for res in (by_option, by_env):
        assert res.returncode == 0, res.stderr
        assert "team_orders" in res.stdout and "orders_daily.json" not in res.stdout
    ok = dagspec("validate", "--no-connections", "--definitions", str(repo / "definitions"), "--sql-dir", str(repo / "sql"))
    assert ok.returncode == 0 and "1 valid definition(s), 0 problem(s)" in ok.stderr, ok.stderr
    for command in ("validate", "list", "run", "backfill", "freshness", "sync", "adopt"):
        assert "--definitions" in dagspec(command, "--help").stdout, command


def test_a_missing_sql_file_names_the_absolute_folder_searched(tmp_path):
    repo = team_repo(tmp_path)
    elsewhere = tmp_path / "not-here"
    elsewhere.mkdir()
    res = dagspec("validate", "--no-connections", "--definitions", str(repo / "definitions"), "--sql-dir", str(elsewhere))
    assert res.returncode == 1
    assert f"does not exist in {elsewhere.resolve()}" in res.stdout, res.stdout
    res = dagspec("run", "nope", "--date", "2025-03-01", "--definitions", str(repo / "definitions"), cwd=tmp_path)
    assert res.returncode == 2 and str((repo / "definitions").resolve()) in res.stderr.replace("\n", "")


def test_validate_checks_named_connections_when_the_store_is_readable(airflow_db, tmp_path):
    repo = team_repo(tmp_path)
    path = repo / "definitions" / "team_orders.json"
    pipeline = json.loads(path.read_text())
    pipeline["steps"][0]["source"]["conn_id"] = "team_pg"
    path.write_text(json.dumps(pipeline))
    folders = ("--definitions", str(repo / "definitions"), "--sql-dir", str(repo / "sql"))
    res = dagspec("validate", *folders, AIRFLOW_HOME=str(airflow_db))
    assert res.returncode == 1
    assert res.stdout.strip() == ("definitions/team_orders.json: $.steps[0].source.conn_id: connection 'team_pg' is not "
                                  "defined (fix: create it in Airflow, `airflow connections add team_pg ...`, or set "
                                  "AIRFLOW_CONN_TEAM_PG)")
    res = dagspec("validate", *folders, AIRFLOW_HOME=str(airflow_db), AIRFLOW_CONN_TEAM_PG="postgresql://u@db:5432/x")
    assert res.returncode == 0 and res.stdout == "", res.stdout
    fresh = tmp_path / "no-db-airflow"  # an Airflow home whose metadata DB was never migrated
    res = dagspec("validate", *folders, AIRFLOW_HOME=str(fresh))
    assert res.returncode == 0 and "connections not checked: Airflow's connections are not readable" in \
        res.stderr.replace("\n", " "), res.stderr
