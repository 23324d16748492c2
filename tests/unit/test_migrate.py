"""Format versions: a v2 reads v1 files through a registered migration, with errors in the file's own terms.

The v2 here is a real change of the kind the format will see: `retry_delay_minutes` (v1) becomes
`retry_delay_seconds` (v2), value converted. The model is built from the shipped v1 model, so the
rest of the definition is validated exactly as in production.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import Field, create_model

from dagspec.spec import DefinitionError
from dagspec.spec.load import parse_definition
from dagspec.spec.migrate import CURRENT, Migration, Versions
from dagspec.spec.model import Pipeline, Strict

ROOT = Path(__file__).resolve().parents[2]
SQL = ROOT / "include" / "sql"


def _v2_model():
    fields: dict[str, Any] = {
        name: (f.annotation, f) for name, f in Pipeline.model_fields.items()
        if name not in ("version", "retry_delay_minutes")
    }
    return create_model(
        "PipelineV2", __base__=Strict, version=(Literal[2], Field(default=2)),
        retry_delay_seconds=(float, Field(default=300, ge=0)), **fields,
    )


PipelineV2 = _v2_model()


def minutes_to_seconds(data: dict[str, Any]) -> dict[str, Any]:
    if "retry_delay_minutes" in data:
        value = data.pop("retry_delay_minutes")
        # A wrong value is passed on untouched: the v2 model reports it, under the v1 key.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        data["retry_delay_seconds"] = value * 60 if ok else value
    return data


V2 = Versions(current=2, migrations=(
    Migration(source=1, change=minutes_to_seconds, renamed={"pipeline": {"retry_delay_seconds": "retry_delay_minutes"}},
              note="retry_delay_minutes -> retry_delay_seconds"),
))

V1_FILE = {
    "dag_id": "orders_v1", "start_date": "2025-01-01", "retry_delay_minutes": 10,
    "steps": [{"id": "extract", "kind": "extract", "source": {"table": "orders"},
               "target": {"schema": "raw", "table": "orders"}}],
}


def parse_v2(data: dict, name: str = "definitions/x.json"):
    return parse_definition(json.dumps(data).encode(), name, sql_dir=SQL, model=PipelineV2, versions=V2)


def test_v1_file_reads_as_v2_with_the_field_renamed_and_converted():
    p = parse_v2(V1_FILE)
    assert p.version == 2 and p.retry_delay_seconds == 600
    assert p.dag_id == "orders_v1" and p.steps[0].source.table == "orders"


def test_explicit_v1_and_native_v2_files_agree():
    v2 = {k: v for k, v in V1_FILE.items() if k != "retry_delay_minutes"} | {"version": 2, "retry_delay_seconds": 600}
    assert parse_v2({**V1_FILE, "version": 1}).model_dump() == parse_v2(v2).model_dump()


def test_v1_key_in_a_v2_file_is_unknown_there():
    with pytest.raises(DefinitionError) as info:
        parse_v2({**V1_FILE, "version": 2})
    assert [(p.path, p.message) for p in info.value.problems] == [
        ("$.retry_delay_minutes", "unknown key 'retry_delay_minutes'")]


def test_error_in_a_migrated_field_names_the_key_the_file_has():
    with pytest.raises(DefinitionError) as info:
        parse_v2({**V1_FILE, "retry_delay_minutes": "soon", "retries": "x"})
    assert {p.path for p in info.value.problems} == {"$.retry_delay_minutes", "$.retries"}


def test_newer_version_than_known_is_refused_with_the_supported_ones():
    with pytest.raises(DefinitionError) as info:
        parse_v2({**V1_FILE, "version": 3})
    [problem] = info.value.problems
    assert problem.path == "$.version" and problem.message == "unsupported definition version 3"
    assert "versions 1, 2" in problem.fix


@pytest.mark.parametrize("version", ["1", 1.5, True, None])
def test_version_must_be_a_whole_number(version):
    with pytest.raises(DefinitionError) as info:
        parse_v2({**V1_FILE, "version": version})
    assert info.value.problems[0].path == "$.version"


def test_migration_leaves_the_callers_data_alone():
    data = json.loads(json.dumps(V1_FILE))
    V2.upgrade(data)
    assert data == V1_FILE


def test_shipped_format_is_v1_and_every_example_is_current():
    assert CURRENT.current == 1 and CURRENT.migrations == ()
    for path in (ROOT / "dags" / "definitions").glob("*.json"):
        assert json.loads(path.read_text()).get("version", 1) == CURRENT.current
