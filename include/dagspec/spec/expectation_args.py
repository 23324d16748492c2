"""Expectation arguments checked at `dagspec validate` time, against what Great Expectations accepts.

The rules come from GX's own expectation classes (pydantic models), described in
gx_expectation_args.json by scripts/gen_expectation_types.py, so no GX import is needed at DAG
parse time. On top of them, the checks GX leaves to run time (or never makes): regexes compile,
min_value <= max_value, a value set is a list of plain values. Where GX would coerce (the string
"0.9" for a number, true for 1, 5.5 for a whole number) dagspec refuses: what a user wrote as
text is a mistake more often than a number.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SubProblem = tuple[tuple[str | int, ...], str, str]  # (location under the expectation, message, fix)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")
_REGEX_KEYS = ("regex", "regex_list")
_ORDER = ["string", "number", "integer", "boolean", "array", "object", "enum", "date", "datetime", "null"]
_NAMES = {
    "string": "a string", "number": "a number", "integer": "a whole number", "boolean": "true or false",
    "array": "a list", "object": "an object", "null": "null", "date": "an ISO date string ('2025-01-31')",
    "datetime": "an ISO date-time string ('2025-01-31T12:00:00Z')",
}


@lru_cache(maxsize=1)
def argument_specs() -> dict[str, dict[str, dict[str, Any]]]:
    return json.loads(Path(__file__).with_name("gx_expectation_args.json").read_text())["arguments"]


def is_parameter(value: Any) -> bool:
    return isinstance(value, dict) and "$PARAMETER" in value


def iso_value(value: Any) -> dt.date | dt.datetime | None:
    """An ISO date or date-time string as GX's pydantic model reads it (None if it is neither)."""
    if not isinstance(value, str):
        return None
    try:
        if _DATE.fullmatch(value):
            return dt.date.fromisoformat(value)
        if _DATETIME.fullmatch(value):
            return dt.datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _accepts(kind: str, value: Any, field: dict[str, Any]) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return _is_number(value) and math.isfinite(value)
    if kind == "integer":
        return _is_number(value) and math.isfinite(value) and float(value).is_integer()
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "enum":
        return isinstance(value, (str, int, float, bool)) and value in field.get("enum", ())
    if kind == "array":
        return isinstance(value, list) and all(any(_accepts(k, v, {}) for k in field.get("items", ["any"]))
                                               for v in value)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "date":
        return type(iso_value(value)) is dt.date
    if kind == "datetime":
        return isinstance(iso_value(value), dt.datetime)
    return False  # "parameter": refused on its own (see _value_problems)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _wanted(field: dict[str, Any]) -> str:
    names = []
    for kind in sorted(field["types"], key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER)):
        if kind == "enum":
            names.append("one of " + ", ".join(json.dumps(v) for v in field.get("enum", ())))
        elif kind == "array" and field.get("items") == ["string"]:
            names.append("a list of strings")
        elif kind in _NAMES:
            names.append(_NAMES[kind])
    if not names:
        return "another value"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _fix(key: str, value: Any, field: dict[str, Any]) -> str:
    kinds = set(field["types"])
    if "array" in kinds and not isinstance(value, list):
        return f"write a list, e.g. [{_short(value)}]" if isinstance(value, (str, int, float)) else "write a list [ ... ]"
    if "number" in kinds or "integer" in kinds:
        bounds = (field.get("minimum"), field.get("maximum"))
        if isinstance(value, str) and _is_number(_number(value)) and not ({"date", "datetime"} & kinds):
            return f"write the number without quotes: {value.strip()}"
        if bounds != (None, None):
            return f"use a number from {bounds[0]:g} to {bounds[1]:g}, e.g. 0.95" if None not in bounds else \
                "use a number within the bounds"
        return "write a number without quotes" + (", or an ISO date string" if "date" in kinds else "")
    if kinds & {"string"} and not isinstance(value, str):
        return f"put it in double quotes: \"{value}\"" if isinstance(value, (int, float)) else "write a string"
    if "boolean" in kinds:
        return "write true or false without quotes"
    if "enum" in kinds:
        close = difflib.get_close_matches(str(value), [str(v) for v in field.get("enum", ())], n=1)
        return f"did you mean {close[0]!r}?" if close else "use one of the listed values"
    return f"see GX's documentation of {key!r}"


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return None


def _value_problems(key: str, value: Any, field: dict[str, Any]) -> list[SubProblem]:
    at = ("kwargs", key)
    if is_parameter(value):
        return [(at, f"suite parameter {_short(value)} is not supported: dagspec passes no parameter values to "
                     "Great Expectations, so it would never be resolved", "write the value itself")]
    if not any(_accepts(kind, value, field) for kind in field["types"]):
        return [(at, f"expected {_wanted(field)}, got {_short(value)}", _fix(key, value, field))]
    if _is_number(value):
        lo, hi = field.get("minimum"), field.get("maximum")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return [(at, f"must be between {lo:g} and {hi:g}, got {_short(value)}", _fix(key, value, field))]
    return []


def _bound(value: Any) -> tuple[str, Any] | None:
    if _is_number(value):
        return "number", value
    parsed = iso_value(value)
    if parsed is None:
        return None
    if isinstance(parsed, dt.datetime):
        return ("aware" if parsed.tzinfo else "naive"), parsed
    return "naive", dt.datetime.combine(parsed, dt.time())


def _rule_problems(kwargs: dict[str, Any]) -> list[SubProblem]:
    """What GX's models let through and GX fails on (or gets wrong) at run time."""
    out: list[SubProblem] = []
    lo, hi = _bound(kwargs.get("min_value")), _bound(kwargs.get("max_value"))
    if lo and hi:
        if lo[0] != hi[0]:
            out.append((("kwargs", "max_value"), f"min_value {_short(kwargs['min_value'])} and max_value "
                        f"{_short(kwargs['max_value'])} cannot be compared (a number and a date, or a time zone "
                        "on one only)", "give both bounds the same kind"))
        elif lo[1] > hi[1] or (lo[1] == hi[1] and (kwargs.get("strict_min") is True or kwargs.get("strict_max") is True)):
            out.append((("kwargs", "min_value"), f"min_value {_short(kwargs['min_value'])} is above max_value "
                        f"{_short(kwargs['max_value'])}" + (" (strict bounds)" if lo[1] == hi[1] else "")
                        + ": no value can pass", "swap the bounds, or fix the one that is wrong"))
    for key in _REGEX_KEYS:
        patterns = kwargs.get(key)
        for i, pattern in enumerate([patterns] if isinstance(patterns, str) else
                                    patterns if isinstance(patterns, list) else []):
            if not isinstance(pattern, str):
                continue
            try:
                re.compile(pattern)
            except re.error as exc:
                at = ("kwargs", key) if isinstance(patterns, str) else ("kwargs", key, i)
                out.append((at, f"regex {_short(pattern)} does not compile: {exc}",
                            "fix the pattern (Python 're' syntax; escape a literal '(' or '[' with '\\')"))
    values = kwargs.get("value_set")
    if isinstance(values, list):
        for i, v in enumerate(values):
            if isinstance(v, (list, dict)):
                out.append((("kwargs", "value_set", i), f"expected a plain value (string, number, true/false, null), "
                            f"got {_short(v)}", "list each value on its own"))
    if kwargs.get("row_condition"):
        from dagspec.spec.row_condition import ConditionError, condition_columns

        try:
            condition_columns(kwargs)
        except ConditionError as exc:
            out.append((("kwargs", "row_condition"), exc.message, exc.fix))
    for key in ("column", "column_A", "column_B"):
        if kwargs.get(key) == "":
            out.append((("kwargs", key), "the column name is empty", "name a column of the batch"))
    return out


def argument_problems(kind: str, kwargs: dict[str, Any]) -> list[SubProblem]:
    """Every problem with one expectation's kwargs (empty when GX would take them and they make sense)."""
    described = argument_specs().get(kind)
    if described is None:
        return []  # an unknown type is reported by its own check
    spec = described["fields"]
    out: list[SubProblem] = []
    for key, value in kwargs.items():
        field = spec.get(key)
        if field is None:
            close = difflib.get_close_matches(key, list(spec), n=1, cutoff=0.6)
            out.append((("kwargs", key), f"unknown argument {key!r} for {kind}",
                        f"did you mean {close[0]!r}?" if close else f"arguments it takes: {', '.join(sorted(spec))}"))
        else:
            out += _value_problems(key, value, field)
    for key, field in spec.items():
        if field["required"] and key not in kwargs:
            out.append((("kwargs",), f"required argument {key!r} of {kind} is missing",
                        f"add \"{key}\": {_example(field)}"))
    if described["needs_a_bound"] and kwargs.get("min_value") is None and kwargs.get("max_value") is None:
        out.append((("kwargs",), f"{kind} needs min_value, max_value or both (Great Expectations refuses neither)",
                    'add "min_value": ... or "max_value": ...'))
    if not out:
        out += _rule_problems(kwargs)
    return out


def _example(field: dict[str, Any]) -> str:
    kinds = field["types"]
    if "array" in kinds:
        return '["..."]'
    if "string" in kinds:
        return '"..."'
    if "enum" in kinds:
        return json.dumps(field["enum"][0])
    return "..."


def summary(problems: list[SubProblem]) -> str:
    from dagspec.spec.errors import json_path

    return "; ".join(f"{json_path(loc)[2:]}: {msg}" for loc, msg, _ in problems)


def raise_problems(kind: str, kwargs: dict[str, Any]) -> None:
    """For a pydantic validator: one error carrying every problem (spec/load.py lists each at its own path)."""
    from pydantic_core import PydanticCustomError

    problems = argument_problems(kind, kwargs)
    if problems:
        raise PydanticCustomError("dagspec_problems", "{summary}", {"summary": summary(problems), "problems": problems})
