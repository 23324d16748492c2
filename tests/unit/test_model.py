"""The definition model: valid examples pass; each kind of mistake gives a precise, actionable error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagspec.spec import DefinitionError, parse_definition
from dagspec.spec.load import load_definition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "dags" / "definitions").glob("*.json"))

MINIMAL = {
    "dag_id": "orders_min",
    "start_date": "2025-01-01",
    "steps": [
        {"id": "extract", "kind": "extract", "source": {"table": "orders"}, "target": {"schema": "raw", "table": "orders"}}
    ],
}


def problems(data: dict | str | bytes) -> list[tuple[str, str, str]]:
    raw = data if isinstance(data, bytes) else (data if isinstance(data, str) else json.dumps(data)).encode()
    with pytest.raises(DefinitionError) as info:
        parse_definition(raw, "defs/x.json", sql_dir=ROOT / "include" / "sql")
    assert all(p.file == "defs/x.json" for p in info.value.problems)
    return [(p.path, p.message, p.fix) for p in info.value.problems]


def with_changes(**changes) -> dict:
    data = json.loads(json.dumps(MINIMAL))
    data.update(changes)
    return data


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path):
    pipeline = load_definition(path, sql_dir=ROOT / "include" / "sql")
    assert pipeline.dag_id == path.stem
    assert pipeline.steps


def test_minimal_definition_gets_defaults():
    p = parse_definition(json.dumps(MINIMAL).encode(), "x.json")
    assert (p.schedule, p.catchup, p.retries, p.batch_days) == ("@daily", False, 1, 1)
    assert (p.warehouse.conn_id, p.store.conn_id) == ("dagspec_warehouse", "dagspec_store")
    assert p.steps[0].source.conn_id == "dagspec_source"


def test_wrong_type_names_path_and_expected_type():
    [(path, message, fix)] = problems(with_changes(retries="three"))
    assert path == "$.retries"
    assert message == "expected a whole number, got 'three'" and "without quotes" in fix


def test_unknown_key_suggests_the_nearest():
    [(path, message, fix)] = problems(with_changes(schedul="@daily"))
    assert (path, message, fix) == ("$.schedul", "unknown key 'schedul'", "did you mean 'schedule'?")


def test_unknown_key_inside_a_step_suggests_from_that_step_kind():
    data = with_changes()
    data["steps"][0]["source"]["incremental_colum"] = "ordered_at"
    [(path, message, fix)] = problems(data)
    assert path == "$.steps[0].source.incremental_colum"
    assert fix == "did you mean 'incremental_column'?"


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "@fortnightly", "every day"])
def test_bad_cron(cron):
    [(path, message, _)] = problems(with_changes(schedule=cron))
    assert path == "$.schedule"
    assert repr(cron) in message


def test_sub_daily_schedule_with_batch_days_is_refused_with_the_reason():
    [(path, message, _)] = problems(with_changes(schedule="@hourly", batch_days=2))
    assert "runs more than once a day" in message and "remove batch_days" in message


@pytest.mark.parametrize("value", ["2025-13-01", "01/02/2025", "yesterday"])
def test_bad_start_date(value):
    [(path, message, fix)] = problems(with_changes(start_date=value))
    assert path == "$.start_date" and "YYYY-MM-DD" in fix


def test_unknown_step_kind_lists_the_kinds():
    data = with_changes()
    data["steps"][0]["kind"] = "extrct"
    [(path, message, fix)] = problems(data)
    assert path == "$.steps[0]" and "extrct" in message and "extract, validate, transform, publish" in fix


def test_identifier_that_is_not_plain():
    data = with_changes()
    data["steps"][0]["target"]["table"] = "orders; drop table x"
    [(path, message, _)] = problems(data)
    assert path == "$.steps[0].target.table" and "not a plain identifier" in message


def test_reference_to_unknown_step_and_kind_mismatch():
    data = with_changes()
    data["steps"] += [
        {"id": "check", "kind": "validate", "input": "extrat",
         "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}}]},
        {"id": "pub", "kind": "publish", "input": "check", "table": {"schema": "a", "table": "b"}},
    ]
    found = problems(data)
    assert ("$.steps[1].input", "unknown step 'extrat'", "use one of: extract, check, pub") in found
    assert any(p == "$.steps[2].input" and "validate step and has no batch" in m for p, m, _ in found)


def test_cycle_among_steps_is_named():
    data = with_changes()
    data["steps"] = [
        {"id": "a", "kind": "transform", "sql": "orders/daily_revenue.sql", "after": ["b"]},
        {"id": "b", "kind": "transform", "sql": "orders/daily_revenue.sql", "after": ["a"]},
    ]
    [(path, message, _)] = problems(data)
    assert "cycle" in message and "a -> b -> a" in message


def test_missing_sql_file():
    data = with_changes()
    data["steps"].append({"id": "t", "kind": "transform", "sql": "orders/nope.sql"})
    [(path, message, _)] = problems(data)
    assert path == "$.steps[1].sql" and "'orders/nope.sql' does not exist" in message


def test_unknown_expectation_type_suggests_the_real_one():
    data = with_changes()
    data["steps"].append(
        {"id": "v", "kind": "validate", "input": "extract",
         "expectations": [{"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "a"}}]}
    )
    [(path, message, _)] = problems(data)
    assert path == "$.steps[1].expectations[0].type"
    assert "did you mean 'expect_column_values_to_not_be_null'?" in message


def test_all_problems_of_a_file_are_reported_at_once():
    data = with_changes(retries=-1, schedule="nope", tags="x")
    assert {p for p, _, _ in problems(data)} == {"$.retries", "$.schedule", "$.tags"}


@pytest.mark.parametrize(
    "raw,expected",
    [
        (b"", "the file is empty"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "top level is a JSON list"),
        (b'// note\n{"dag_id": "x"}', "invalid JSON"),
        (b'{"dag_id": "x",}', "invalid JSON"),
    ],
)
def test_unreadable_files(raw, expected):
    [(_, message, _)] = problems(raw)
    assert expected in message


def test_comments_get_a_specific_fix():
    [(path, _, fix)] = problems(b'// note\n{"dag_id": "x"}')
    assert path == "line 1, column 1" and "JSON has none" in fix


def test_unsupported_version():
    [(path, message, _)] = problems(with_changes(version=2))
    assert path == "$.version" and "unsupported definition version 2" in message


def test_duplicate_step_ids():
    data = with_changes()
    data["steps"].append(dict(data["steps"][0]))
    [(path, message, _)] = problems(data)
    assert path == "$.steps[1].id" and "used twice" in message


def test_schedule_assets_take_asset_uris_and_refuse_other_text():
    data = with_changes(schedule=None, schedule_assets=["dagspec-warehouse://dagspec_warehouse/analytics/daily_revenue"])
    pipeline = parse_definition(json.dumps(data).encode(), "defs/x.json", sql_dir=ROOT / "include" / "sql")
    assert pipeline.schedule is None and pipeline.schedule_assets == [data["schedule_assets"][0]]
    found = problems(with_changes(schedule_assets=["analytics.daily_revenue"]))
    assert [p[0] for p in found] == ["$.schedule_assets[0]"]
