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
