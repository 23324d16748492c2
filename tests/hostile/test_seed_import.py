"""Hostile seed files for `dagspec import`: every one refused with the field and a reason, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagspec.seed_import import SeedError, import_seed

ROOT = Path(__file__).resolve().parents[2]
SEED = json.loads((ROOT / "tests" / "definitions" / "seed_orders.json").read_text())
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))


@pytest.mark.parametrize("change, where", [
    ({"table_name": "orders; DROP TABLE users"}, "$.table_name"),
    ({"schema": "analytics\"--"}, "$.schema"),
    ({"query": "DROP TABLE {schema}.{table_name}; INSERT INTO {schema}.{table_name} SELECT 1"}, "$.query"),
    ({"query": "INSERT INTO {schema}.{table_name} SELECT * FROM t WHERE r = '{region}'"}, "$.query"),
    ({"query": "INSERT INTO {schema}.{table_name} VALUES (1, 2)"}, "$.query"),
    ({"query": "INSERT INTO {schema}.{table_name} SELEC 1"}, "$.query"),
    ({"query": "INSERT INTO {schema}.{table_name} (a, b) SELECT 1"}, "$.query"),
    ({"schedule_interval": "*/5 * * *"}, "$.schedule_interval"),
    ({"schedule_interval": "61 * * * *"}, "$.schedule_interval"),
    ({"schedule_interval": 3600}, "$.schedule_interval"),
    ({"start_date": "yesterday"}, "$.start_date"),
    ({"back_date_from": "2025-13-01"}, "$.back_date_from"),
    ({"table_columns": ["order_day", "channel"]}, "$.table_columns"),
    ({"dag_id": ""}, "$.dag_id"),
])
def test_a_bad_seed_field_is_refused_with_its_path(change, where):
    with pytest.raises(SeedError) as err:
        import_seed({**SEED, **change})
    assert str(err.value).startswith(where + ":"), str(err.value)


def test_window_placeholders_become_bound_parameters_never_text():
    hostile = {**SEED, "query": "INSERT INTO {schema}.{table_name} (order_day, channel, orders, revenue) "
               "SELECT d, c, n, r FROM raw.x WHERE at >= '{from_date}' AND note <> '{to_date}'' OR 1=1 --'"}
    try:
        sql = import_seed({**hostile, "table_columns": None}).sql
    except SeedError as exc:  # refusing is as good as binding
        assert str(exc).startswith("$.query:")
        return
    assert "{from_date}" not in sql and "{to_date}" not in sql and ":from_date" in sql


def test_one_bad_seed_file_does_not_stop_the_others_and_writes_nothing_of_its_own(tmp_path):
    good, bad, broken = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "broken.json"
    good.write_text(json.dumps(SEED))
    bad.write_text(json.dumps({**SEED, "dag_id": "bad_one", "table_name": "x y"}))
    broken.write_text('{"dag_id": "broken", ')
    definitions, sql = tmp_path / "definitions", tmp_path / "sql"
    env = {**os.environ, "DAGSPEC_HOME": str(tmp_path / "home")}
    res = subprocess.run([DAGSPEC, "import", str(bad), str(broken), str(good), "--definitions", str(definitions),
                          "--sql-dir", str(sql)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1
    assert f"{bad}: $.table_name:" in res.stderr and f"{broken}: $: cannot read it as JSON" in res.stderr
    assert "Traceback" not in res.stderr
    assert sorted(p.name for p in definitions.iterdir()) == ["redshift_orders_daily.json"]
    assert sorted(p.name for p in (sql / "imported").iterdir()) == ["redshift_orders_daily.sql"]
    # A second import does not replace what is there without --force.
    before = (definitions / "redshift_orders_daily.json").read_text()
    again = subprocess.run([DAGSPEC, "import", str(good), "--definitions", str(definitions), "--sql-dir", str(sql)],
                           capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 1 and "exists already (fix: pass --force" in again.stderr
    assert (definitions / "redshift_orders_daily.json").read_text() == before


def test_inline_import_keeps_the_sql_in_the_definition_and_writes_no_file(tmp_path):
    definitions, sql = tmp_path / "definitions", tmp_path / "sql"
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    env = {**os.environ, "DAGSPEC_HOME": str(tmp_path / "home")}
    res = subprocess.run([DAGSPEC, "import", str(seed), "--inline", "--definitions", str(definitions),
                          "--sql-dir", str(sql)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    step = json.loads((definitions / "redshift_orders_daily.json").read_text())["steps"][0]
    assert "sql" not in step and "CAST(:from_date AS DATE)" in step["query"] and not sql.exists()
