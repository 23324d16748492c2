"""Read a definition file into a Pipeline, or raise DefinitionError listing every problem in it."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dagspec.spec.errors import DefinitionError, Problem, json_path
from dagspec.spec.graph import find_cycle
from dagspec.spec.model import ExtractStep, Pipeline, PublishStep, TransformStep, ValidateStep, reference_problems

STEP_CLASSES: dict[str, type[BaseModel]] = {
    "extract": ExtractStep,
    "validate": ValidateStep,
    "transform": TransformStep,
    "publish": PublishStep,
}
MAX_BYTES = 1_000_000  # a pipeline is a page of JSON; megabytes mean a wrong file was dropped


def load_definition(path: str | Path, *, sql_dir: Path | None = None) -> Pipeline:
    path = Path(path)
    name = str(path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as exc:
        raise DefinitionError([Problem(name, "$", f"cannot read the file: {exc.strerror}")]) from None
    return parse_definition(raw_bytes, name, sql_dir=sql_dir)


def parse_definition(raw_bytes: bytes, name: str, *, sql_dir: Path | None = None) -> Pipeline:
    data = _decode(raw_bytes, name)
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(_from_pydantic(exc, data, name)) from None
    problems = [Problem(name, json_path(loc), msg, fix) for loc, msg, fix in reference_problems(pipeline)]
    if not problems:
        cycle = find_cycle(pipeline)
        if cycle:
            problems.append(
                Problem(
                    name,
                    json_path(("steps", cycle[0][0], "after")),
                    "steps depend on each other in a cycle: " + " -> ".join(sid for _, sid in cycle),
                    "remove one of these 'after' entries",
                )
            )
    if sql_dir is not None:
        problems.extend(_missing_sql(pipeline, sql_dir, name))
    if problems:
        raise DefinitionError(problems)
    return pipeline


def _decode(raw_bytes: bytes, name: str) -> dict[str, Any]:
    if len(raw_bytes) > MAX_BYTES:
        raise DefinitionError(
            [Problem(name, "$", f"file is {len(raw_bytes):,} bytes; a definition is at most {MAX_BYTES:,}",
                     "split it, or check that the right file was dropped")]
        )
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            [Problem(name, "$", f"not UTF-8 text (bad byte at offset {exc.start})", "save the file as UTF-8")]
        ) from None
    if not text.strip():
        raise DefinitionError([Problem(name, "$", "the file is empty", "write a JSON object with dag_id and steps")])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fix = "remove comments: JSON has none (use a \"description\" field)" if _has_comment(text) else "fix the JSON syntax"
        raise DefinitionError(
            [Problem(name, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}", fix)]
        ) from None
    if not isinstance(data, dict):
        raise DefinitionError(
            [Problem(name, "$", f"the top level is a JSON {type(data).__name__ if data is not None else 'null'}, "
                     "not an object", "write one pipeline per file as a JSON object {...}")]
        )
    return data


def _has_comment(text: str) -> bool:
    return any(line.lstrip().startswith(("//", "/*", "#")) for line in text.splitlines())


def _from_pydantic(exc: ValidationError, data: dict[str, Any], name: str) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = _strip_tags(err["loc"], data)
        problems.append(Problem(name, json_path(loc), *_explain(err, loc, data)))
    return problems


def _strip_tags(loc: tuple, data: dict[str, Any]) -> tuple:
    """Pydantic puts a union's tag in the location (steps.0.extract.source); JSON has no such level."""
    out: list = []
    node: Any = data
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node and part == _kind_of(node):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(out)


def _kind_of(node: dict[str, Any]) -> str:
    # Steps always carry a kind; a source without one is a SQL source (the union's default).
    return str(node.get("kind", "sql"))


def _explain(err: dict[str, Any], loc: tuple, data: dict[str, Any]) -> tuple[str, str]:
    kind = err["type"]
    field = str(loc[-1]) if loc else "$"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data)
        close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.5)
        fix = f"did you mean {close[0]!r}?" if close else f"allowed keys here: {', '.join(sorted(allowed))}"
        return f"unknown key {field!r}", fix
    if kind == "missing":
        return f"required key {field!r} is missing", f"add {field!r}"
    if kind == "union_tag_invalid":
        return (f"unknown step kind {err['input'] if not isinstance(err['input'], dict) else err['input'].get('kind')!r}",
                f"use one of: {', '.join(STEP_CLASSES)}")
    if kind == "union_tag_not_found":
        return "step has no 'kind'", f"add \"kind\": one of {', '.join(STEP_CLASSES)}"
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        if "A-Za-z_][A-Za-z0-9_]{0,62}" in pattern:
            return (f"{err['input']!r} is not a plain identifier",
                    "use letters, digits and underscores, starting with a letter or underscore (max 63)")
        if pattern.endswith(r"\.sql$"):
            return f"{err['input']!r} is not a .sql file path", "name a .sql file under include/sql/, e.g. 'orders/daily.sql'"
        if field == "dag_id":
            return f"{err['input']!r} is not a valid dag_id", "use letters, digits, '_', '.' and '-' (max 250)"
        if field == "conn_id":
            return f"{err['input']!r} is not a valid connection id", "use letters, digits, '_', '.' and '-'"
        return f"{err['input']!r} has characters that are not allowed", f"match {pattern}"
    if kind.startswith("date_") or (kind == "date_type"):
        return f"{err['input']!r} is not a date", "write dates as YYYY-MM-DD, e.g. \"2025-01-01\""
    if kind == "literal_error" and field == "version":
        return (f"unsupported definition version {err['input']!r}",
                "use \"version\": 1 (see include/schema/dagspec.schema.json)")
    if kind == "value_error":
        message = str(err["msg"]).removeprefix("Value error, ")
        return message, _fix_for_value_error(field, message)
    got = _short(err.get("input"))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected a whole number, got {got}", "write a number without quotes, e.g. 3"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {got}", "write a number without quotes, e.g. 2.5"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {got}", "write true or false without quotes"
    if kind in ("string_type",):
        return f"expected a string, got {got}", "put the value in double quotes"
    if kind in ("list_type",):
        return f"expected a list, got {got}", "write it as [ ... ]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected an object, got {got}", "write it as { ... }"
    if kind == "too_short":
        least = err.get("ctx", {}).get("min_length", 1)
        return f"needs at least {least} item(s)", "add " + ("a step" if field == "steps" else "an item")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return f"{err['msg']} (got {got})", ""
    return f"{err['msg']} (got {got})", ""


def _fix_for_value_error(field: str, message: str) -> str:
    if field == "schedule" and "runs more than once a day" not in message:
        return "use a preset like \"@daily\" or five cron fields like \"0 3 * * *\""
    return ""


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple, data: dict[str, Any]) -> list[str]:
    """The keys the model accepts at ``loc`` (for 'did you mean'), found by walking model and data together."""
    model: type[BaseModel] | None = Pipeline
    node: Any = data
    i = 0
    while i < len(loc) and model is not None:
        part = loc[i]
        if part == "steps" and model is Pipeline and i + 1 < len(loc):
            node = node.get("steps", [])[loc[i + 1]] if isinstance(node, dict) else {}
            model = STEP_CLASSES.get(node.get("kind")) if isinstance(node, dict) else None
            i += 2
            continue
        field = _field_by_key(model, part)
        if field is None:
            return []
        node = node.get(part, {}) if isinstance(node, dict) else node
        model = _model_in(field.annotation, _kind_of(node) if isinstance(node, dict) else None)
        if isinstance(node, list) and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            node = node[loc[i + 1]]
            i += 1
        i += 1
    if model is None:
        return []
    return [f.alias or key for key, f in model.model_fields.items()]


def _field_by_key(model: type[BaseModel], key: Any):
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _model_in(annotation: Any, kind: str | None = None) -> type[BaseModel] | None:
    """The model a field holds; in a tagged union, the member whose `kind` matches."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    found = [m for arg in getattr(annotation, "__args__", ()) or () if (m := _model_in(arg, kind)) is not None]
    for model in found:
        kind_field = model.model_fields.get("kind")
        if kind is None or kind_field is None or kind in getattr(kind_field.annotation, "__args__", ()):
            return model
    return found[0] if found else None


def _missing_sql(pipeline: Pipeline, sql_dir: Path, name: str) -> list[Problem]:
    problems = []
    for i, step in enumerate(pipeline.steps):
        if isinstance(step, TransformStep) and not (sql_dir / step.sql).is_file():
            problems.append(
                Problem(name, json_path(("steps", i, "sql")), f"SQL file {step.sql!r} does not exist in {sql_dir}",
                        "create it, or fix the path (relative to include/sql/)")
            )
    return problems
