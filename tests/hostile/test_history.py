"""Hostile history inputs: names that would be SQL are refused at validate, a history() name the step does not
list never reaches the warehouse, and reserved words as table names are quoted, not pasted."""

from __future__ import annotations

import json
from datetime import date

import pytest

from dagspec.errors import StepFailed
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import DefinitionError
from dagspec.spec.load import parse_definition

DAY = date(2025, 3, 1)


def definition(history: list, query: str = "SELECT count(*) AS n FROM {{ history('publish') }} AS h") -> bytes:
    return json.dumps({"dag_id": "hist", "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"table": "customers"},
         "target": {"schema": "raw", "table": "customers"}},
        {"id": "publish", "kind": "publish", "input": "extract", "table": {"schema": "select", "table": "order"}},
        {"id": "counted", "kind": "transform", "query": query, "history": history}]}).encode()


@pytest.mark.parametrize("history, where, says", [
    ([{"step": "publish; DROP TABLE raw.customers"}], "$.steps[2].history[0].step", "not a plain identifier"),
    ([{"step": "publish\" --"}], "$.steps[2].history[0].step", "not a plain identifier"),
    ([{"table": {"schema": "x'||pg_sleep(9)||'", "table": "t"}}], "$.steps[2].history[0].table.schema",
     "not a plain identifier"),
    ([{"table": {"schema": "_tmp", "table": "t"}}], "$.steps[2].history[0].table.schema", "keeps for itself"),
    ([{"step": "ghost"}], "$.steps[2].history[0].step", "unknown step 'ghost'"),
    ([{"step": "counted"}], "$.steps[2].history[0].step", "its own history"),
    ([{"step": "extract"}], "$.steps[2].history[0].step", "publishes no warehouse table"),
    ([{"step": "publish", "days": 1.5}], "$.steps[2].history[0].days", ""),
    ([{}], "$.steps[2].history[0]", "exactly one of 'step'"),
    (["publish"], "$.steps[2].history[0]", ""),
])
def test_hostile_history_inputs_are_refused_at_validate_with_their_path(history, where, says):
    with pytest.raises(DefinitionError) as info:
        parse_definition(definition(history), "hist.json")
    problems = [(p.path, p.message, p.fix) for p in info.value.problems]
    assert [p for p, _, _ in problems] == [where], problems
    assert says in problems[0][1] and problems[0][2]


def test_reserved_words_as_the_history_table_are_quoted_and_an_unlisted_name_never_runs(data_home, rows_of):
    pipeline = parse_definition(definition([{"step": "publish"}]), "hist.json")
    run_pipeline(pipeline, window_of_day(pipeline, DAY))
    assert rows_of('SELECT n FROM dagspec_work.hist__counted') == [(5000,)]
    step = pipeline.step("counted")
    step.query = "SELECT * FROM {{ history('select.order\"; DROP TABLE raw.x; --') }} AS h"  # past validate
    with pytest.raises(StepFailed, match=r"is not in the step's 'history' \(it has: 'publish'\)"):
        run_pipeline(pipeline, window_of_day(pipeline, DAY))
    assert rows_of('SELECT count(*) FROM "select"."order"') == [(5000,)]
