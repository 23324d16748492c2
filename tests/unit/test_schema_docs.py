"""The published JSON Schema documents every field of every step kind and of every object inside one.

Editors show these while people type a definition (hover text, completion, default values). The step
kinds are read from the model's discriminated union, so a new kind is checked without touching this file.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dagspec.spec.load import step_classes
from dagspec.spec.model import Pipeline
from dagspec.spec.schema import json_schema

SCHEMA = json_schema()


def _refs(node: Any) -> set[str]:
    """Names of the $defs a schema node points at, at any depth."""
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for k, v in node.items() if k not in ("examples", "default")))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _step_defs() -> dict[str, str]:
    """kind -> $defs name, for every member of the model's `steps` union."""
    return {kind: cls.__name__ for kind, cls in step_classes(Pipeline).items()}


def _documented() -> dict[str, dict]:
    """Pipeline, every step kind, and every object reachable from them (sources, targets, ML parts...)."""
    defs = SCHEMA["$defs"]
    todo = ["Pipeline", *_step_defs().values()]
    out: dict[str, dict] = {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = SCHEMA if name == "Pipeline" else defs[name]
        todo.extend(_refs(out[name]) - set(out))
    return dict(sorted(out.items()))


OBJECTS = _documented()


def test_every_step_kind_of_the_union_is_in_the_schema():
    kinds = _step_defs()
    mapping = SCHEMA["properties"]["steps"]["items"]["discriminator"]["mapping"]
    assert set(mapping) == set(kinds)
    assert len(kinds) >= 9  # extract, validate, transform, publish and the five model kinds at least
    for kind, name in kinds.items():
        assert SCHEMA["$defs"][name]["properties"]["kind"]["const"] == kind
        assert name in OBJECTS


def test_nested_objects_are_covered_too():
    # Spot check that the walk reaches inside steps and sources, not only the step kinds themselves.
    assert {"ObjectSource", "BigQuerySource", "BigQueryTarget", "SheetTarget", "MLData", "Feature", "Split",
            "Guard", "ScoreOutput", "Alerts", "Freshness"} <= set(OBJECTS)


@pytest.mark.parametrize("name", list(OBJECTS))
def test_every_field_has_description_default_and_examples(name):
    obj = OBJECTS[name]
    required = set(obj.get("required", []))
    gaps = []
    for key, prop in obj["properties"].items():
        if not prop.get("description"):
            gaps.append(f"{key}: description")
        if key not in required and "default" not in prop:
            gaps.append(f"{key}: default")
        if not prop.get("examples"):
            gaps.append(f"{key}: examples")
    assert gaps == []


@pytest.mark.parametrize("name", list(OBJECTS))
def test_every_example_is_valid_for_its_field(name):
    """An example an editor offers must itself pass the schema (pattern, enum, bounds, nested objects)."""
    bad = []
    for key, prop in OBJECTS[name]["properties"].items():
        field_schema = {**prop, "$defs": SCHEMA["$defs"]}
        validator = jsonschema.Draft202012Validator(field_schema)
        for example in prop.get("examples", []):
            errors = [e.message for e in validator.iter_errors(example)]
            if errors:
                bad.append(f"{key}: {json.dumps(example)}: {errors[0]}")
    assert bad == []


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ not in out:
                out[annotation.__name__] = annotation
                for field in annotation.model_fields.values():
                    walk(field.annotation)
            return
        for arg in getattr(annotation, "__args__", ()) or ():
            walk(arg)

    walk(root)
    return out


@pytest.mark.parametrize("name", list(OBJECTS))
def test_defaults_in_the_schema_are_the_models_defaults(name):
    """Including default_factory fields, whose schema default is written by hand (json_schema_extra)."""
    cls = _models(Pipeline)[name]
    props = OBJECTS[name]["properties"]
    for key, field in cls.model_fields.items():
        prop = props[field.alias or key]
        if field.is_required():
            continue
        value = field.default_factory() if field.default is PydanticUndefined else field.default
        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True, mode="json")
        assert prop["default"] == value, f"{name}.{key}"
