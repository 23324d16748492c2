"""The JSON Schema published for editors (autocomplete, inline errors) and `dagspec schema`."""

from __future__ import annotations

import json

from dagspec.spec.expectation_types import known_types
from dagspec.spec.model import Pipeline


def json_schema() -> dict:
    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://dagspec.dev/schema/v1/dagspec.schema.json"
    schema["title"] = "dagspec pipeline definition (v1)"
    # The model checks expectation types in Python; editors need them as an enum to autocomplete.
    schema["$defs"]["Expectation"]["properties"]["type"]["enum"] = list(known_types())
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"
