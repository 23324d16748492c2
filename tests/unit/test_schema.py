"""The published JSON Schema: current, and it accepts what the model accepts and rejects the basics."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from dagspec.spec.schema import schema_text

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "include" / "schema" / "dagspec.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_published_schema_is_current():
    assert SCHEMA_FILE.read_text() == schema_text(), "run `make schema` and commit include/schema/"


@pytest.mark.parametrize("path", sorted((ROOT / "dags" / "definitions").glob("*.json")), ids=lambda p: p.name)
def test_examples_validate_against_schema(validator, path):
    assert list(validator.iter_errors(json.loads(path.read_text()))) == []


def test_schema_rejects_unknown_keys_bad_types_and_unknown_expectations(validator):
    base = json.loads((ROOT / "dags" / "definitions" / "orders_daily.json").read_text())
    for change in ({"schedul": "@daily"}, {"retries": "3"}, {"catchup": "yes"}):
        assert list(validator.iter_errors({**base, **change})), change
    bad = json.loads(json.dumps(base))
    bad["steps"][1]["expectations"][0]["type"] = "expect_nothing"
    assert list(validator.iter_errors(bad))


def test_schema_documents_every_step_kind():
    schema = json.loads(SCHEMA_FILE.read_text())
    kinds = {d["properties"]["kind"]["const"] for name, d in schema["$defs"].items() if name.endswith("Step")}
    assert {"extract", "validate", "transform", "publish"} <= kinds
    assert schema["properties"]["schedule"]["description"]
