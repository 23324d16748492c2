"""Hostile publish table targets: a snapshot must keep at least one batch, and modes are a closed list."""

from __future__ import annotations

import json

import pytest

from dagspec.spec import DefinitionError
from dagspec.spec.load import parse_definition


def definition(table: dict) -> bytes:
    return json.dumps({"dag_id": "snap", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"table": "customers"},
         "target": {"schema": "raw", "table": "customers"}},
        {"id": "publish", "kind": "publish", "input": "extract",
         "table": {"schema": "mart", "table": "customers", **table}}]}).encode()


@pytest.mark.parametrize("extra, where, says", [
    ({"mode": "snapshot", "keep": 0}, "$.steps[1].table.keep", "greater than or equal to 1"),
    ({"mode": "snapshot", "keep": -3}, "$.steps[1].table.keep", "greater than or equal to 1"),
    ({"mode": "latest"}, "$.steps[1].table.mode", "snapshot"),
    ({"keep": 2}, "$.steps[1].table", "only applies to"),
])
def test_bad_table_modes_are_refused_with_their_path(extra, where, says):
    with pytest.raises(DefinitionError) as info:
        parse_definition(definition(extra), "snap.json")
    problems = [(p.path, p.message, p.fix) for p in info.value.problems]
    assert [p for p, _, _ in problems] == [where] and says in problems[0][1] and problems[0][2]


def test_snapshot_keeps_one_batch_unless_told():
    steps = parse_definition(definition({"mode": "snapshot"}), "snap.json").steps
    assert steps[1].table.keep_batches == 1
    steps = parse_definition(definition({}), "snap.json").steps
    assert steps[1].table.keep_batches is None


@pytest.mark.parametrize("post_sql, says", [
    (["DELETE FROM {{ this }}"], "starts with 'DELETE'"),
    (["DROP TABLE {{ this }}"], "starts with 'DROP'"),
    (["  insert into {{ this }} select 1"], "starts with 'INSERT'"),
    (["ANALYZE {{ this }}; DROP TABLE other"], "holds 2 statements"),
    (["ALTER TABLE {{ this }} DROP COLUMN x"], "may only change the owner"),
    (["{{ 'DEL' ~ 'ETE' }} FROM {{ this }}"], "starts with 'DELETE'"),  # what it renders to counts
    (["GRANT SELECT ON {{ thiss }} TO r"], "'thiss' is undefined"),
    (["VACUUM {{ this }}"], "starts with 'VACUUM'"),
])
def test_post_load_sql_is_upkeep_only_checked_at_validate(post_sql, says):
    with pytest.raises(DefinitionError) as info:
        parse_definition(definition({"post_sql": post_sql}), "snap.json", check_sql=True)
    (problem,) = info.value.problems
    assert problem.path == "$.steps[1].table.post_sql[0]" and says in problem.message, problem
    assert problem.fix


def test_post_load_sql_that_is_upkeep_passes():
    ok = ["ANALYZE {{ this }}", "GRANT SELECT ON {{ this }} TO reporting", "REVOKE ALL ON {{ this }} FROM public",
          "COMMENT ON TABLE {{ this }} IS 'loaded {{ ds }}'", "ALTER TABLE {{ this }} OWNER TO analytics"]
    step = parse_definition(definition({"post_sql": ok}), "snap.json", check_sql=True).steps[1]
    assert step.table.post_sql == ok


def test_a_post_statement_that_escapes_validate_is_refused_when_it_would_run(tmp_path, data_home):
    from datetime import date

    from dagspec.runner import run_pipeline, window_of_day
    from dagspec.spec import load_definition
    from dagspec.stages import StepFailed

    path = tmp_path / "snap.json"
    path.write_bytes(definition({"post_sql": ["DELETE FROM {{ this }}"]}))  # the loader does not parse SQL
    pipeline = load_definition(path)
    with pytest.raises(StepFailed, match=r"table.post_sql\[0\]: post-load SQL starts with 'DELETE'"):
        run_pipeline(pipeline, window_of_day(pipeline, date(2025, 3, 1)))
