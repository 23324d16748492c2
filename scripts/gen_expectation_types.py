"""Regenerate the GX description files in include/dagspec/spec/ from the installed Great Expectations.

- gx_expectation_types.json: every registered expectation type (definitions are checked, and
  autocompleted in editors, without importing GX at DAG parse time, which costs seconds).
- gx_expectation_args.json: each type's arguments as GX 1.x's own expectation classes (pydantic models)
  declare them: accepted JSON kinds, required or not, allowed literals, numeric bounds. dagspec.spec.
  expectation_args checks kwargs against it at `dagspec validate` time.

tests/unit/test_expectation_types.py fails when either file drifts from the installed GX.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import typing
from collections.abc import Sequence
from pathlib import Path

import great_expectations
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.registry import get_expectation_impl, list_registered_expectation_implementations

SPEC = Path(__file__).resolve().parents[1] / "include" / "dagspec" / "spec"
TYPES_OUT = SPEC / "gx_expectation_types.json"
ARGS_OUT = SPEC / "gx_expectation_args.json"
# Fields of GX's Expectation base class that GX also takes as kwargs; the rest (id, meta, notes, severity, ...)
# are the expectation's own keys, written beside kwargs in a definition, or are set by GX.
BASE_KWARGS = {"result_format", "catch_exceptions"}
NOT_ARGUMENTS = {"library_metadata", "batch_id"}  # class data and a value GX sets itself


def current_types() -> list[str]:
    return sorted(n for n in list_registered_expectation_implementations() if n.startswith("expect_"))


def _kinds(annotation, out: dict, in_union: bool) -> None:
    """Fold one annotation into a field description: 'types' (JSON-level kinds) plus enum/bounds/items."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    types = out.setdefault("types", set())
    if origin is typing.Annotated:
        _kinds(args[0], out, in_union)
    elif origin is typing.Union:
        for arg in args:
            _kinds(arg, out, True)
    elif annotation is type(None):
        types.add("null")
    elif origin is typing.Literal:
        types.add("enum")
        out.setdefault("enum", []).extend(args)
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        types.add("enum")
        out.setdefault("enum", []).extend(m.value for m in annotation)
    elif annotation is typing.Any:
        types.add("any")
    elif origin in (list, set, tuple, Sequence) or annotation in (list, set, tuple, list):
        types.add("array")
        item = args[0] if args and origin is not tuple else typing.Any
        sub: dict = {}
        _kinds(item, sub, False)
        out["items"] = sorted(sub["types"])
    elif annotation is dict or origin is dict:
        # In GX a dict beside other types is the slot for a suite parameter ({"$PARAMETER": name}).
        types.add("parameter" if in_union else "object")
    elif annotation is bool:
        types.add("boolean")
    elif annotation is dt.datetime:
        types.add("datetime")
    elif annotation is dt.date:
        types.add("date")
    elif isinstance(annotation, type) and issubclass(annotation, str):
        types.add("string")
    elif isinstance(annotation, type) and issubclass(annotation, int):
        types.add("integer")
    elif isinstance(annotation, type) and issubclass(annotation, float):
        types.add("number")
        for key, name in (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusive_minimum"), ("lt", "exclusive_maximum")):
            if getattr(annotation, key, None) is not None:
                out[name] = getattr(annotation, key)
    else:  # GX's own classes (row conditions, quantile ranges): GX checks those at run time
        types.add("any")


def describe(kind: str) -> dict[str, dict]:
    cls = get_expectation_impl(kind)
    base = set(Expectation.__fields__) - BASE_KWARGS
    fields = {}
    for name, field in sorted(cls.__fields__.items()):
        if name in base or name in NOT_ARGUMENTS:
            continue
        out: dict = {}
        _kinds(field.annotation, out, False)
        if name == "result_format":  # its dict is GX's result-format object, not a suite parameter
            out["types"] = {"object" if t == "parameter" else t for t in out["types"]}
        out["types"] = sorted(out["types"])
        if "enum" in out:
            out["enum"] = sorted(set(out["enum"]), key=str)
        out["required"] = bool(field.required)
        fields[field.alias or name] = out
    return fields


_DUMMY = {"string": "x", "array": ["x"], "number": 1, "integer": 1, "boolean": True, "any": "x", "parameter": {}}


def needs_a_bound(kind: str, fields: dict[str, dict]) -> bool:
    """Whether GX's class (a root validator) refuses the expectation with neither min_value nor max_value."""
    if not {"min_value", "max_value"} <= set(fields):
        return False
    cls = get_expectation_impl(kind)
    required = {k: _DUMMY[next(t for t in f["types"] if t in _DUMMY)] for k, f in fields.items() if f["required"]}
    try:
        cls(**required)
        return False
    except Exception:
        cls(**required, min_value=1)  # and the reason was the missing bound
        return True


def current_args() -> dict:
    arguments = {}
    for kind in current_types():
        fields = describe(kind)
        arguments[kind] = {"fields": fields, "needs_a_bound": needs_a_bound(kind, fields)}
    return {"great_expectations": great_expectations.__version__, "arguments": arguments}


def render(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    TYPES_OUT.write_text(json.dumps({"great_expectations": great_expectations.__version__, "types": current_types()},
                                    indent=1) + "\n")
    ARGS_OUT.write_text(render(current_args()))
    print(f"wrote {TYPES_OUT} and {ARGS_OUT}")
