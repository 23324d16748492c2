"""Read a definition file into a Pipeline, or raise DefinitionError listing every problem in it."""

from __future__ import annotations

import difflib
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from dagspec.spec import model as model_module
from dagspec.spec.cross_checks import cross_step_problems
from dagspec.spec.errors import DefinitionError, Problem, json_path
from dagspec.spec.graph import StepView, view_of_model, view_of_raw, view_problems
from dagspec.spec.jsontext import MAX_BYTES, decode_definition, read_definition  # noqa: F401  (re-exported)
from dagspec.spec.migrate import CURRENT, Versions
from dagspec.spec.model import Pipeline

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic.fields import FieldInfo

log = logging.getLogger(__name__)
MAX_STEPS = 10_000
MAX_PROBLEMS = 200
Loc = tuple


def step_classes(model: type[BaseModel] = Pipeline) -> dict[str, type[BaseModel]]:
    """kind -> step model, read from the model's `steps` union so new step kinds need no change here."""
    return _step_classes(model)


@lru_cache(maxsize=8)
def _step_classes(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    out: dict[str, type[BaseModel]] = {}
    for cls in _models_in(model.model_fields["steps"].annotation):
        kind = cls.model_fields.get("kind")
        for value in getattr(kind.annotation, "__args__", ()) if kind is not None else ():
            out[value] = cls
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models_in(arg)]


@lru_cache(maxsize=8)
def _step_adapter(model: type[BaseModel]) -> TypeAdapter:
    return TypeAdapter(model.model_fields["steps"].annotation.__args__[0])


def load_definition(path: str | Path, *, sql_dir: Path | None = None, suite_dir: Path | None = None,
                    check_sql: bool = False) -> Pipeline:
    """Read and check one definition. With ``sql_dir`` the files it names are checked too: SQL files there,
    suite files in ``suite_dir`` (default: include/expectations/, or $DAGSPEC_EXPECTATIONS_DIR). With
    ``check_sql`` every SQL it holds is rendered for a sample window and parsed (spec/sql_check.py)."""
    path = Path(path)
    raw_bytes = _guarded(str(path), read_definition, path, str(path))
    return parse_definition(raw_bytes, str(path), sql_dir=sql_dir, suite_dir=suite_dir, check_sql=check_sql)


def parse_definition(
    raw_bytes: bytes,
    name: str,
    *,
    sql_dir: Path | None = None,
    suite_dir: Path | None = None,
    model: type[BaseModel] = Pipeline,
    versions: Versions = CURRENT,
    check_sql: bool = False,
) -> Pipeline:
    """The Pipeline, or DefinitionError with every problem of the file found in one pass.

    With ``sql_dir`` the files the definition names must exist: SQL files under it, GX suite files under
    ``suite_dir`` (default: the project's include/expectations/).

    Whatever goes wrong inside (a parser limit, a bug in a rule) is this file's DefinitionError: one bad
    drop must never stop a caller that is reading a whole folder.
    """
    return _guarded(name, _parse, raw_bytes, name, sql_dir, suite_dir, model, versions, check_sql)


T = TypeVar("T")


def _guarded(name: str, work: Callable[..., T], *args: Any) -> T:
    """``work(*args)``, with anything but a DefinitionError turned into one for ``name``."""
    try:
        return work(*args)
    except DefinitionError:
        raise
    except Exception as exc:  # RecursionError and MemoryError included: both are Exceptions
        # INFO: a shell's `validate` shows one line, not a traceback; the dag-processor log keeps it.
        log.info("dagspec: checking %s failed", name, exc_info=True)
        text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        raise DefinitionError([Problem(name, "$", f"dagspec could not check this definition ({text[:200]})",
                                       "simplify the file; if it looks valid, report it with the file")]) from None


def _parse(raw_bytes: bytes, name: str, sql_dir: Path | None, suite_dir: Path | None, model: type[BaseModel],
           versions: Versions, check_sql: bool) -> Pipeline:
    data, found = decode_definition(raw_bytes, name)
    steps = data.get("steps")
    if isinstance(steps, list) and len(steps) > MAX_STEPS:  # before pydantic: 300,000 `{}` took 22 s to explain
        raise DefinitionError([Problem(name, "$.steps", f"{len(steps):,} steps; a definition holds at most "
                                       f"{MAX_STEPS:,}", "split it into several definitions")])
    data, written, version_problems = versions.upgrade(data)
    if version_problems:  # another format: its keys mean nothing to this model
        raise DefinitionError([Problem(name, json_path(loc), msg, fix) for loc, msg, fix in version_problems])
    pipeline = None
    try:
        pipeline = model.model_validate(data)
    except ValidationError as exc:
        found += _from_pydantic(exc, data, model)
    views = _views(pipeline, data, found, model)
    taken = {loc for loc, _, _ in found}
    # The model's reference rules (REFERENCE_RULES, each kind's ref_fields) applied to views, so they
    # hold for the steps pydantic accepted even when others in the file were rejected.
    cross = view_problems(views, model_module.REFERENCE_RULES)
    if pipeline is not None:
        cross += cross_step_problems(pipeline)
        if check_sql:
            from dagspec.paths import sql_dir as default_sql_dir
            from dagspec.spec.sql_check import sql_problems  # sqlglot: imported only when asked for

            cross += sql_problems(pipeline, sql_dir or default_sql_dir())
    if sql_dir is not None:
        cross += _missing_sql(views, sql_dir)
        cross += _missing_suites(data, model, suite_dir)
    seen: set[tuple[Loc, str]] = set()
    for loc, msg, fix in cross:
        if loc in taken or (loc, msg) in seen:
            continue
        seen.add((loc, msg))
        found.append((loc, msg, fix))
    if found:
        shown = [Problem(name, versions.path(loc, written), msg, fix) for loc, msg, fix in found[:MAX_PROBLEMS]]
        if len(found) > MAX_PROBLEMS:  # an import error and a stub record of megabytes help nobody
            shown.append(Problem(name, "$", f"{len(found) - MAX_PROBLEMS:,} more problem(s) not shown",
                                 "fix the ones above first"))
        raise DefinitionError(shown)
    return pipeline


def _views(pipeline: Any, data: dict[str, Any], found: list, model: type[BaseModel]) -> list[StepView]:
    if pipeline is not None:
        return [view_of_model(i, s) for i, s in enumerate(pipeline.steps)]
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    broken = {loc[1] for loc, _, _ in found if len(loc) > 1 and loc[0] == "steps" and isinstance(loc[1], int)}
    views = []
    for i, raw in enumerate(steps):
        if i not in broken:
            try:
                views.append(view_of_model(i, _step_adapter(model).validate_python(raw)))
                continue
            except ValidationError:
                pass
        views.append(view_of_raw(i, raw))
    return views


def _from_pydantic(exc: ValidationError, data: dict[str, Any], model: type[BaseModel]) -> list[tuple[Loc, str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = _strip_tags(err["loc"], data)
        if err["type"] == "dagspec_problems":  # a rule reporting several problems, each at its own sub-path
            problems += [((*loc, *sub), msg, fix) for sub, msg, fix in err["ctx"]["problems"]]
            continue
        if loc == () and "end_date is before" in str(err.get("msg", "")):
            loc = ("end_date",)  # a model-level rule, but the key to change is end_date
        problems.append((loc, *_explain(err, loc, data, model)))
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


def _explain(err: dict[str, Any], loc: tuple, data: dict[str, Any], model: type[BaseModel]) -> tuple[str, str]:
    kind = err["type"]
    field = str(loc[-1]) if loc else "$"
    kinds = ", ".join(step_classes(model))
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data, model)
        close = difflib.get_close_matches(field, allowed, n=1, cutoff=0.5)
        fix = f"did you mean {close[0]!r}?" if close else f"allowed keys here: {', '.join(sorted(allowed))}"
        return f"unknown key {field!r}", fix
    if kind == "missing":
        return f"required key {field!r} is missing", f"add {field!r}"
    if kind == "union_tag_invalid":
        return (f"unknown step kind {err['input'] if not isinstance(err['input'], dict) else err['input'].get('kind')!r}",
                f"use one of: {kinds}")
    if kind == "union_tag_not_found":
        return "step has no 'kind'", f"add \"kind\": one of {kinds}"
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        if "A-Za-z_][A-Za-z0-9_]{0,62}" in pattern:
            return (f"{err['input']!r} is not a plain identifier",
                    "use letters, digits and underscores, starting with a letter or underscore (max 63)")
        if pattern.endswith(r"\.sql$"):
            return f"{err['input']!r} is not a .sql file path", "name a .sql file under include/sql/, e.g. 'orders/daily.sql'"
        if pattern.endswith(r"\.json$") and field == "suite":
            return (f"{err['input']!r} is not a .json file path",
                    "name a suite file under include/expectations/, e.g. 'orders.json'")
        if field == "dag_id":
            return f"{err['input']!r} is not a valid dag_id", "use letters, digits, '_', '.' and '-' (max 250)"
        if field == "conn_id":
            return f"{err['input']!r} is not a valid connection id", "use letters, digits, '_', '.' and '-'"
        if "schedule_assets" in map(str, loc):
            return (f"{err['input']!r} is not an Asset URI",
                    "give the URI of another definition's output, e.g. "
                    "'dagspec-warehouse://dagspec_warehouse/analytics/daily_revenue'")
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
        value = err.get("input")
        fix = ("write a whole number without a decimal point or exponent, e.g. 3" if isinstance(value, float)
               else "write a number, not true or false" if isinstance(value, bool)
               else "write a number without quotes, e.g. 3")
        return f"expected a whole number, got {got}", fix
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
        bound = next(iter(err.get("ctx", {}).values()), "")
        sign = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}[kind]
        return f"{err['msg']} (got {got})", f"use a value {sign} {bound}"
    if kind == "literal_error":
        return f"{err['msg']} (got {got})", f"use one of: {err.get('ctx', {}).get('expected', '')}"
    return f"{err['msg']} (got {got})", ""


_VALUE_ERROR_FIXES = {  # message start -> fix, for the model's own rules
    "give exactly one of 'table' or 'query'": "keep either 'table' (with 'incremental_column' if incremental) or 'query'",
    "end_date is before start_date": "set end_date on or after start_date, or remove it",
    "a publish step needs": "add \"table\": {\"schema\": ..., \"table\": ...} or \"export\": {\"format\": \"parquet\"}",
    "'columns' and 'incremental_column' go with 'table'": "remove them, or read a 'table' instead of a 'query'",
    "the SQL file must be inside include/sql/": "give a path relative to include/sql/, e.g. 'orders/daily.sql'",
    "schema '": "choose another schema name, e.g. 'raw' or 'analytics'",
    "'keep' only applies to": "add \"mode\": \"snapshot\" beside 'keep', or remove 'keep'",
    "give exactly one of 'sql'": "keep \"sql\": \"file.sql\" or \"query\": \"SELECT ...\", not both",
}


def _fix_for_value_error(field: str, message: str) -> str:
    if field == "schedule":
        return "use a preset like \"@daily\" or five cron fields like \"0 3 * * *\""
    for start, fix in _VALUE_ERROR_FIXES.items():
        if message.startswith(start):
            return fix
    return ""


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(loc: tuple, data: dict[str, Any], top: type[BaseModel] = Pipeline) -> list[str]:
    """The keys the model accepts at ``loc`` (for 'did you mean'), found by walking model and data together."""
    model: type[BaseModel] | None = top
    node: Any = data
    i = 0
    while i < len(loc) and model is not None:
        part = loc[i]
        if part == "steps" and model is top and i + 1 < len(loc):
            node = node.get("steps", [])[loc[i + 1]] if isinstance(node, dict) else {}
            model = step_classes(top).get(node.get("kind")) if isinstance(node, dict) else None
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


def _field_by_key(model: type[BaseModel], key: Any) -> FieldInfo | None:
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


def _missing_sql(views: list[StepView], sql_dir: Path) -> list[tuple[Loc, str, str]]:
    problems = []
    for v in views:
        if v.sql is None or not v.sql.endswith(".sql") or ".." in v.sql.split("/") or v.sql.startswith("/"):
            continue  # a malformed path is already reported by the model
        if not (sql_dir / v.sql).is_file():
            problems.append((("steps", v.index, *v.sql_at), f"SQL file {v.sql!r} does not exist in {_short_dir(sql_dir)}",
                             f"create it, or fix the path (relative to {_short_dir(sql_dir)}/)"))
    return problems


def _missing_suites(data: dict[str, Any], model: type[BaseModel], suite_dir: Path | None) -> list[tuple[Loc, str, str]]:
    """Suite files named by steps (read from the JSON, so steps pydantic rejected are checked too)."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    with_suite = {kind for kind, cls in step_classes(model).items() if "suite" in cls.model_fields}
    problems = []
    for i, raw in enumerate(steps):
        if not isinstance(raw, dict) or raw.get("kind") not in with_suite:
            continue
        suite = raw.get("suite")
        if not isinstance(suite, str) or not suite.endswith(".json") or ".." in suite.split("/") \
                or suite.startswith("/"):
            continue  # absent, or a malformed path the model already reports
        if suite_dir is None:
            from dagspec.paths import expectations_dir

            suite_dir = expectations_dir()
        if not (suite_dir / suite).is_file():
            problems.append((("steps", i, "suite"),
                             f"suite file {suite!r} does not exist in {_short_dir(suite_dir)}",
                             f"create it, or fix the path (relative to {_short_dir(suite_dir)}/)"))
        else:
            from dagspec.spec.suites import suite_problems

            problems += [(("steps", i, "suite"), msg, fix) for msg, fix in suite_problems(suite_dir / suite, suite)]
    return problems


def _short_dir(folder: Path) -> str:
    # Inside this repository the project-relative form reads the same on a laptop, in CI and in a
    # container; any other folder (a team's own repository) is named whole, so nobody guesses where.
    from dagspec.paths import PROJECT_ROOT

    absolute = folder.resolve()
    try:
        return absolute.relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return str(absolute)
