"""Bundles: a folder in the definitions folder holding definitions with their own sql/ and expectations/.

A bundle's SQL and suite files have names the shared folders do not hold (and the CLI tests point the shared
folders at empty ones), so a run that succeeds can only have read the bundle's own files. A bundle goes
live whole: one bad file refuses all of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from support.expected import expected_revenue, warehouse_rows

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))
DAY = date(2025, 3, 1)


def bundle_definition(dag_id: str, sql: str = "revenue.sql") -> dict:
    """orders_daily under its own name and tables, reading its SQL and suite from the bundle."""
    data = json.loads((ROOT / "dags/definitions/orders_daily.json").read_text())
    data.pop("$schema")
    data["dag_id"] = dag_id
    for step in data["steps"]:
        if step["kind"] == "extract":
            step["target"]["table"] = f"{dag_id}_orders"
        if step["kind"] == "validate":
            del step["expectations"]
            step["suite"] = "team_suite.json"  # a name the shared folder does not have
        if step["kind"] == "transform":
            step["sql"] = sql
        if step["kind"] == "publish":
            step["table"]["table"] = f"{dag_id}_{step['table']['table']}"
    return data


def make_bundle(definitions: Path, name: str, *dag_ids: str, sql_text: str | None = None) -> Path:
    bundle = definitions / name
    (bundle / "sql").mkdir(parents=True)
    (bundle / "expectations").mkdir()
    for dag_id in dag_ids:
        (bundle / f"{dag_id}.json").write_text(json.dumps(bundle_definition(dag_id), indent=2))
    (bundle / "sql" / "revenue.sql").write_text(sql_text or (ROOT / "include/sql/orders/daily_revenue.sql").read_text())
    (bundle / "expectations" / "team_suite.json").write_text((ROOT / "include/expectations/orders.json").read_text())
    return bundle


@pytest.fixture()
def empty_shared(tmp_path, monkeypatch) -> dict[str, str]:
    """Shared SQL and suite folders with nothing in them."""
    env = {}
    for variable, name in (("DAGSPEC_SQL_DIR", "no-sql"), ("DAGSPEC_EXPECTATIONS_DIR", "no-suites")):
        (tmp_path / name).mkdir()
        env[variable] = str(tmp_path / name)
        monkeypatch.setenv(variable, env[variable])
    return env


def dagspec(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSPEC, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **env})


def test_a_bundle_validates_lists_and_runs_with_its_own_sql_and_suite(data_home, tmp_path, empty_shared):
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    make_bundle(definitions, "team_a", "bundled_orders")
    env = {**empty_shared, "DAGSPEC_DEFINITIONS": str(definitions), "DAGSPEC_HOME": str(data_home)}

    checked = dagspec("validate", "--no-connections", env=env)
    assert checked.returncode == 0 and "1 valid definition(s), 0 problem(s)" in checked.stderr, checked.stdout
    listed = dagspec("list", env=env)
    assert "team_a/bundled_orders.json" in listed.stdout and "valid" in listed.stdout, listed.stdout

    ran = dagspec("run", "bundled_orders", "--date", DAY.isoformat(), env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    rows = warehouse_rows(data_home / "warehouse.duckdb",
                          "SELECT * FROM analytics.bundled_orders_daily_revenue WHERE batch_date = ? ORDER BY channel",
                          [DAY])
    assert rows == expected_revenue(data_home / "source.db", DAY)
    report = json.loads(next((data_home / "reports").rglob("*.json")).read_text())
    assert len(report["results"]) == len(json.loads((ROOT / "include/expectations/orders.json").read_text())["expectations"])


def test_one_bad_file_refuses_the_whole_bundle_and_nothing_else(tmp_path, empty_shared):
    from dagspec.spec.discovery import scan

    definitions = tmp_path / "definitions"
    definitions.mkdir()
    bundle = make_bundle(definitions, "team_b", "good_one", "bad_one")
    bad = bundle_definition("bad_one", sql="missing.sql")
    (bundle / "bad_one.json").write_text(json.dumps(bad))
    make_bundle(definitions, "team_c", "unparsable", sql_text="SELECT FROM WHERE (((")
    make_bundle(definitions, "team_d", "fine")
    good, errors = scan(definitions)  # the loader's own scan: it checks SQL only for bundles

    assert {p.dag_id for p in good.values()} == {"fine"}
    by_name = {f"{p.parent.name}/{p.name}": str(e) for p, e in errors.items()}
    assert set(by_name) == {"team_b/good_one.json", "team_b/bad_one.json", "team_c/unparsable.json"}
    assert "SQL file 'missing.sql' does not exist in" in by_name["team_b/bad_one.json"]
    assert "team_b/sql" in by_name["team_b/bad_one.json"]
    assert "bundle 'team_b' is refused as a whole: bad_one.json has errors" in by_name["team_b/good_one.json"]
    assert "$.steps[3]" in by_name["team_c/unparsable.json"]


def test_folders_that_are_not_bundles_are_left_alone(tmp_path, empty_shared):
    from dagspec.spec.discovery import definition_files

    definitions = tmp_path / "definitions"
    definitions.mkdir()
    make_bundle(definitions, "team_e", "e")
    hidden = make_bundle(definitions, ".team_e.incoming", "half_copied")  # a drop being copied in
    (hidden / "half_copied.json").write_text("{")
    (definitions / "sql").mkdir()
    (definitions / "sql" / "x.json").write_text("{}")  # a folder's own sql/ is not a bundle
    (definitions / "team_e" / "sql" / "nested.json").write_text("{}")  # two levels down: never a definition
    assert [f"{p.parent.name}/{p.name}" for p in definition_files(definitions)] == ["team_e/e.json"]


def run_for(dag, day: date):
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return dag.test(logical_date=end)


def test_airflow_builds_and_runs_a_bundle_and_files_each_bad_one_under_its_own_stub(airflow_db, dags_folder,
                                                                                   data_home):
    from airflow.dag_processing.dagbag import DagBag

    definitions = dags_folder / "definitions"
    make_bundle(definitions, "team_f", "bundled_in_airflow")
    broken = make_bundle(definitions, "team_g", "orders_daily_like")
    (broken / "sql" / "revenue.sql").unlink()
    # The same file name as a top-level definition: the two stubs must not collide.
    (broken / "orders_daily.json").write_text(json.dumps(bundle_definition("orders_daily_twin")))

    DagBag(dag_folder=str(dags_folder))  # the first parse writes the stubs
    bag = DagBag(dag_folder=str(dags_folder))
    assert "bundled_in_airflow" in bag.dags and "orders_daily" in bag.dags
    assert not {"orders_daily_like", "orders_daily_twin"} & set(bag.dags)
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    assert len(errors) == 2 and "orders_daily.py" not in errors, errors
    assert all("definitions/team_g/" in text and "revenue.sql" in text for text in errors.values())

    assert run_for(bag.dags["bundled_in_airflow"], DAY).state == "success"
    rows = warehouse_rows(data_home / "warehouse.duckdb",
                          "SELECT * FROM analytics.bundled_in_airflow_daily_revenue WHERE batch_date = ? ORDER BY channel",
                          [DAY])
    assert rows == expected_revenue(data_home / "source.db", DAY)


# ---------------------------------------------------------------- remote bundles (moto's S3 server)


class Prefix:
    def __init__(self, server, monkeypatch):
        self.server, self.bucket = server, server.make_bucket("bundles")
        self.uri = f"s3://{self.bucket}/drops"
        monkeypatch.setenv("AIRFLOW_CONN_BUNDLE_DROPS", server.connection_json())

    def put(self, key: str, raw: bytes | str) -> None:
        body = raw.encode() if isinstance(raw, str) else raw
        self.server.client().put_object(Bucket=self.bucket, Key=f"drops/{key}", Body=body)

    def delete(self, key: str) -> None:
        self.server.client().delete_object(Bucket=self.bucket, Key=f"drops/{key}")

    def put_bundle(self, name: str, *dag_ids: str, sql_text: str | None = None) -> None:
        for dag_id in dag_ids:
            self.put(f"{name}/{dag_id}.json", json.dumps(bundle_definition(dag_id)))
        self.put(f"{name}/sql/revenue.sql", sql_text or (ROOT / "include/sql/orders/daily_revenue.sql").read_text())
        self.put(f"{name}/expectations/team_suite.json", (ROOT / "include/expectations/orders.json").read_text())

    def sync(self, target: Path):
        from dagspec.sync import sync

        return sync(self.uri, "bundle_drops", target)


@pytest.fixture()
def prefix(s3_server, monkeypatch) -> Prefix:
    return Prefix(s3_server, monkeypatch)


def live(target: Path) -> dict[str, str]:
    from dagspec.spec.discovery import scan

    good, bad = scan(target)
    assert not bad, {str(p): str(e) for p, e in bad.items()}
    return {p.dag_id: (path.parent / "sql" / "revenue.sql").read_text() for path, p in good.items()}


def test_a_remote_bundle_comes_in_whole_and_a_bad_version_never_replaces_a_good_one(prefix, tmp_path):
    target = tmp_path / "definitions"
    prefix.put_bundle("team", "remote_a", "remote_b")
    first = prefix.sync(target)
    assert (first.added, first.rejected) == (["team/"], {})
    assert (target / "team").is_symlink()
    good_sql = (ROOT / "include/sql/orders/daily_revenue.sql").read_text()
    assert live(target) == {"remote_a": good_sql, "remote_b": good_sql}
    assert prefix.sync(target).unchanged == ["team/"]

    # SQL that does not parse, then a definition naming a file the bundle lacks: refused, the live one stays.
    prefix.put("team/sql/revenue.sql", "SELECT FROM WHERE (((")
    broken = prefix.sync(target)
    assert list(broken.rejected) == ["team/"] and "$.steps[3]" in str(broken.rejected["team/"][0])
    prefix.put("team/sql/revenue.sql", good_sql)
    prefix.put("team/remote_c.json", json.dumps(bundle_definition("remote_c", sql="not_there.sql")))
    missing = prefix.sync(target)
    assert "SQL file 'not_there.sql' does not exist" in str(missing.rejected["team/"][0])
    assert live(target) == {"remote_a": good_sql, "remote_b": good_sql}

    # A good new version: swapped in by one rename, the old version's files gone.
    old_home = (target / "team").resolve()
    prefix.delete("team/remote_c.json")
    prefix.put("team/sql/revenue.sql", good_sql + "\n-- v2\n")
    updated = prefix.sync(target)
    assert (updated.updated, updated.rejected) == (["team/"], {})
    assert live(target) == {"remote_a": good_sql + "\n-- v2\n", "remote_b": good_sql + "\n-- v2\n"}
    assert not old_home.exists()

    for key in ("remote_a.json", "remote_b.json", "sql/revenue.sql", "expectations/team_suite.json"):
        prefix.delete(f"team/{key}")
    gone = prefix.sync(target)
    assert gone.deleted == ["team/"] and not (target / "team").exists()
    assert list((target / ".bundles").iterdir()) == []


def test_a_bundle_never_takes_what_another_holds_or_escapes_its_folder(prefix, tmp_path):
    target = tmp_path / "definitions"
    target.mkdir()
    own = make_bundle(target, "handmade", "handmade_orders")  # a folder somebody made by hand
    (target / "orders_daily.json").write_text((ROOT / "dags/definitions/orders_daily.json").read_text())
    prefix.put_bundle("handmade", "from_remote")
    prefix.put_bundle("thief", "orders_daily")  # a dag_id the folder already has
    prefix.put_bundle("escape", "escaper")
    prefix.put("escape/../../outside.json", "{}")
    prefix.put("sql/x.json", "{}")  # 'sql' is not a bundle name
    report = prefix.sync(target)
    assert report.added == [] and sorted(report.rejected) == ["escape/", "handmade/", "sql/", "thief/"]
    assert "that this sync did not bring in" in report.rejected["handmade/"][0].message
    assert "already used by definitions/orders_daily.json" in str(report.rejected["thief/"])
    assert "file name(s) this sync cannot bring in" in report.rejected["escape/"][0].message
    assert not (tmp_path / "outside.json").exists() and not (target.parent.parent / "outside.json").exists()
    assert sorted(p.name for p in own.iterdir()) == ["expectations", "handmade_orders.json", "sql"]
    assert not (target / "thief").exists() and not (target / "escape").exists()


def test_a_definition_moving_out_of_a_deleted_bundle_comes_in_the_same_pass(prefix, tmp_path):
    target = tmp_path / "definitions"
    prefix.put_bundle("moving", "mover")
    assert prefix.sync(target).added == ["moving/"]
    for key in ("mover.json", "sql/revenue.sql", "expectations/team_suite.json"):
        prefix.delete(f"moving/{key}")
    plain = {**bundle_definition("mover"), "dag_id": "mover_renamed"}  # renamed, writing the same tables
    for step in plain["steps"]:  # the shared folders' files now
        if step["kind"] == "validate":
            step["suite"] = "orders.json"
        if step["kind"] == "transform":
            step["sql"] = "orders/daily_revenue.sql"
    prefix.put("mover.json", json.dumps(plain))
    moved = prefix.sync(target)
    assert (moved.added, moved.deleted, moved.rejected) == (["mover.json"], ["moving/"], {})
    from dagspec.spec.discovery import scan

    good, bad = scan(target)
    assert [p.dag_id for p in good.values()] == ["mover_renamed"] and not bad
