"""Transform unit test files: fixed input rows and the rows a transform must make of them (as dbt's unit tests).

A definition's tests live in ``tests/<dag_id>.json`` beside it (a bundle's in the bundle's ``tests/``), so
the folder scan never takes them for definitions (bundles.NOT_BUNDLES). This module only reads and checks
them against the definition; running them is dagspec.transform_tests.
"""

from __future__ import annotations

import difflib
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError, model_validator

from dagspec.spec.base import IDENTIFIER, StepId, Strict
from dagspec.spec.bundles import TESTS_FOLDER
from dagspec.spec.errors import DefinitionError, Problem, json_path
from dagspec.spec.jsontext import decode_definition, read_definition
from dagspec.spec.model import Pipeline, TransformStep

# Column names are SQL identifiers: they become columns of tables dagspec creates, so they are held to the
# rule every identifier in a definition is.
ColumnName = Annotated[str, Field(pattern=IDENTIFIER)]
Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None
TYPE_NAME = r"^(?i:string|text|varchar|boolean|bool|smallint|integer|int|bigint|real|float|double|date|time|" \
            r"timestamp|timestamptz|decimal\(\d{1,2}, ?\d{1,2}\)|numeric\(\d{1,2}, ?\d{1,2}\))$"
TypeName = Annotated[str, Field(pattern=TYPE_NAME, examples=["decimal(12,2)", "timestamp", "date", "bigint"])]
TYPE_NAMES = ("string, boolean, smallint, integer, bigint, real, double, date, time, timestamp, timestamptz, "
              "decimal(p,s)")
Row = dict[ColumnName, Scalar]
# An input's step id, or a history input's name: a step id or the 'schema.table' of another definition's table.
InputName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")]


class Rows(Strict):
    """Rows of one table, and the types of columns whose type the JSON values do not tell."""

    rows: list[Row] = Field(default_factory=list, max_length=10_000,
                            description="The rows, one JSON object each; a key a row leaves out is null.")
    columns: dict[ColumnName, TypeName] = Field(
        default_factory=dict,
        description="Column types where the values do not tell (decimals, dates, timestamps, all-null columns). "
        "Without one: whole numbers are bigint, other numbers double, text string, true/false boolean.")


class Expected(Rows):
    ordered: bool = Field(default=False, description="Compare the rows in the order the query returns them "
                          "(default: as a multiset, in any order).")


class TransformCase(Strict):
    name: str = Field(pattern=r"^[^\x00-\x1f\x7f]{1,200}$", description="What the case checks (one line).")
    step: StepId = Field(description="The transform step under test.")
    batch_date: date | None = Field(default=None, description="The batch the SQL renders for (default: the "
                                    "definition's start_date): its window gives :from_date/:to_date and ds.")
    params: dict[str, Any] = Field(default_factory=dict, description="Overrides of the definition's params.")
    given: dict[InputName, Rows] = Field(description="Rows of each of the step's inputs, by input step id, and of "
                                         "each history input by its name (with a batch_date column).")
    expect: Expected = Field(description="The rows the transform must produce.")


class TransformTests(Strict):
    schema_ref: str | None = Field(default=None, alias="$schema")
    tests: list[TransformCase] = Field(min_length=1, max_length=1_000)

    @model_validator(mode="after")
    def _unique_names(self) -> TransformTests:
        names = [c.name for c in self.tests]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"test name(s) {', '.join(map(repr, twice))} used more than once")
        return self


def tests_file(definition: Path, pipeline: Pipeline) -> Path:
    """Where a definition's transform tests are (whether or not the file exists)."""
    return definition.parent / TESTS_FOLDER / f"{pipeline.dag_id}.json"


def load_tests(path: Path, pipeline: Pipeline, name: str | None = None) -> TransformTests:
    """The file's cases, checked against the definition; DefinitionError naming file, JSON path and fix."""
    name = name or str(path)
    data, found = decode_definition(read_definition(path, name), name)
    problems = [Problem(name, json_path(loc), msg, fix) for loc, msg, fix in found]
    suite = None
    try:
        suite = TransformTests.model_validate(data)
    except ValidationError as exc:
        problems += list(dict.fromkeys(_problem(name, e) for e in exc.errors()))
    if suite is not None:
        problems += against_definition(name, suite, pipeline)
    if problems:
        raise DefinitionError(problems)
    return suite


def tests_file_problems(folder: Path | None, pipelines: dict[Path, Pipeline]) -> list[Problem]:
    """What `dagspec validate` says of the test files: each valid definition's must load; in a definitions
    ``folder``, a test file (or a bundle's) whose dag_id no valid definition beside it has is named too."""
    found: list[Problem] = []
    root = folder.parent if folder is not None else None
    for path, pipeline in pipelines.items():
        file = tests_file(path, pipeline)
        if file.is_file():
            try:
                load_tests(file, pipeline, _shown(file, root))
            except DefinitionError as exc:
                found += exc.problems
    if folder is None:
        return found
    owned = {tests_file(path, pipeline) for path, pipeline in pipelines.items()}
    for tests in [folder / TESTS_FOLDER, *(d / TESTS_FOLDER for d in sorted(folder.iterdir()) if d.is_dir())]:
        for file in sorted(tests.glob("*.json")) if tests.is_dir() else ():
            if file not in owned and not file.name.startswith("."):
                found.append(Problem(_shown(file, root), "$", f"no valid definition beside it has dag_id "
                                     f"{file.stem!r}", "name the file <dag_id>.json after a definition in "
                                     f"{_shown(tests.parent, root)}, or fix that definition"))
    return found


def _shown(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def against_definition(name: str, suite: TransformTests, pipeline: Pipeline) -> list[Problem]:
    out: list[Problem] = []
    transforms = [s.id for s in pipeline.steps if isinstance(s, TransformStep)]
    for i, case in enumerate(suite.tests):
        where = f"$.tests[{i}]"
        step = next((s for s in pipeline.steps if s.id == case.step), None)
        if not isinstance(step, TransformStep):
            what = "is not a transform step" if step is not None else "is not a step"
            out.append(Problem(name, f"{where}.step", f"{case.step!r} {what} of {pipeline.dag_id}",
                               f"name one of its transforms: {', '.join(transforms) or '(it has none)'}"))
            continue
        inputs = [*step.inputs, *(h.name for h in step.history)]
        for given in case.given:
            if given not in inputs:
                close = difflib.get_close_matches(given, inputs, n=1)
                out.append(Problem(name, json_path(("tests", i, "given", given)), f"{given!r} is not an input of "
                                   f"{step.id}", f"did you mean {close[0]!r}?" if close else
                                   f"give rows for its inputs: {', '.join(inputs) or '(none)'}"))
        for missing in [s for s in inputs if s not in case.given]:
            out.append(Problem(name, f"{where}.given", f"no rows for input {missing!r} of {step.id}",
                               f"add \"{missing}\": {{\"rows\": [...]}} (an empty input: rows [] with its columns)"))
        unknown = sorted(set(case.params) - set(pipeline.params))
        if unknown:
            out.append(Problem(name, f"{where}.params", f"param(s) {', '.join(unknown)} are not in the definition's "
                               "params", f"override only its params: {', '.join(sorted(pipeline.params)) or '(none)'}"))
    return out


_SCALAR_TAGS = ("bool", "int", "float", "str")


def _problem(name: str, err: dict[str, Any]) -> Problem:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("[key]")))
    while "rows" in loc and loc[-1] in _SCALAR_TAGS:  # a cell is checked against each scalar kind: one problem
        loc = loc[:-1]
    kind, got = err["type"], err.get("input")
    field = str(loc[-1]) if loc else "$"
    message, fix = str(err["msg"]).removeprefix("Value error, "), ""
    if kind == "extra_forbidden":
        message, fix = f"unknown key {field!r}", "remove it or check its spelling (README: Testing transforms)"
    elif kind == "missing":
        message, fix = f"required key {field!r} is missing", f"add {field!r}"
    elif kind == "string_pattern_mismatch" and "A-Za-z_][A-Za-z0-9_]" in str(err.get("ctx", {}).get("pattern")):
        message = f"{_short(got)} is not a plain identifier"
        fix = "use letters, digits and underscores, starting with a letter or underscore (max 63)"
    elif kind == "string_pattern_mismatch" and field != "name":
        message, fix = f"{_short(got)} is not a column type", f"use one of: {TYPE_NAMES}"
    elif kind == "string_pattern_mismatch":
        message, fix = f"{_short(got)} is not a test name", "write one line of at most 200 characters"
    elif kind.startswith("date"):
        message, fix = f"{_short(got)} is not a date", "write dates as YYYY-MM-DD, e.g. \"2025-01-01\""
    elif loc and "rows" in loc and isinstance(got, dict | list):
        message, fix = "a cell holds a nested value", "give each column one scalar value (text, number, bool, null)"
    elif kind in ("list_type", "dict_type", "model_type"):
        message = f"expected {'a list' if kind == 'list_type' else 'an object'}, got {_short(got)}"
        fix = "write it as [ ... ]" if kind == "list_type" else "write it as { ... }"
    return Problem(name, json_path(loc), message, fix)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plain_type(name: str) -> str:
    """A column type name in one spelling: lower case, no space after the comma."""
    return re.sub(r",\s*", ",", name.strip().lower())
