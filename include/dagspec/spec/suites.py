"""The expectations a validate step runs: inline ones plus a GX suite file, each with a severity."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.spec.errors import json_path
from dagspec.spec.expectation_args import argument_problems
from dagspec.spec.expectation_types import check_expectation_type

if TYPE_CHECKING:
    from dagspec.spec.batch_steps import ValidateStep

# GX 1.x's own severity names; dagspec's are fail (stop the run) and warn (record, continue).
_GX_SEVERITY = {"critical": "fail", "warning": "warn", "info": "warn"}


@dataclass
class Check:
    type: str
    kwargs: dict[str, Any]
    severity: str = "fail"
    meta: dict[str, Any] = field(default_factory=dict)
    index: int = 0
    where: str = ""  # where it is written, for errors: "expectations[2]" or "suite file orders.json: expectations[0]"

    def config(self) -> dict[str, Any]:
        """GX's expectation_config as it appears in a validation result."""
        return {"type": self.type, "kwargs": dict(self.kwargs), "meta": {**self.meta, "severity": self.severity},
                "severity": "critical" if self.severity == "fail" else "warning"}

    def columns(self) -> list[str] | None:
        """Columns this check reads; None when it needs the whole table."""
        k = self.kwargs
        cols = [k[n] for n in ("column", "column_A", "column_B") if isinstance(k.get(n), str)]
        cols += list(k.get("column_list") or [])
        return [*dict.fromkeys([*cols, *self.condition_columns()])] or None

    def condition_columns(self) -> list[str]:
        """The columns its row_condition names: GX filters the rows by them, so they are read too."""
        from dagspec.spec.row_condition import ConditionError, condition_columns

        try:
            return condition_columns(self.kwargs)
        except ConditionError:  # refused by `dagspec validate`; GX reports it if it ever gets here
            return []


class SuiteError(ValueError):
    pass


def load_suite(path: Path, shown_as: str) -> list[Check]:
    """Read a GX suite JSON file (1.x: name/expectations[type]; 0.x: expectation_suite_name/expectation_type)."""
    checks, problems = _read_suite(path, shown_as)
    if problems:
        raise SuiteError("; ".join(f"{msg} (fix: {fix})" if fix else msg for msg, fix in problems))
    return checks


def suite_problems(path: Path, shown_as: str) -> list[tuple[str, str]]:
    """Every (message, fix) wrong in a suite file: checked by `dagspec validate`, long before a run."""
    return _read_suite(path, shown_as)[1]


def _read_suite(path: Path, shown_as: str) -> tuple[list[Check], list[tuple[str, str]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [], [(f"suite file {shown_as} does not exist under include/expectations/", "")]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        return [], [(f"suite file {shown_as}: not valid JSON ({where})", "fix the JSON syntax")]
    items = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return [], [(f"suite file {shown_as}: no 'expectations' list (is it a GX expectation suite?)", "")]
    checks, problems = [], []
    for i, item in enumerate(items):
        where = f"suite file {shown_as}: expectations[{i}]"
        if not isinstance(item, dict):
            problems.append((f"{where}: expected an object", "write it as { \"type\": ..., \"kwargs\": ... }"))
            continue
        kind = item.get("type") or item.get("expectation_type")
        if not kind:
            problems.append((f"{where}: no 'type'", "add \"type\": an expectation type"))
            continue
        try:
            check_expectation_type(kind)
        except ValueError as exc:
            problems.append((f"{where}: {exc}", ""))
            continue
        kwargs = item.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            problems.append((f"{where}.kwargs: expected an object", "write it as { ... }"))
            continue
        found = argument_problems(kind, kwargs)
        problems += [(f"{where}{json_path(loc)[1:]}: {msg}", fix) for loc, msg, fix in found]
        meta = dict(item.get("meta") or {})
        severity = meta.get("severity") or _GX_SEVERITY.get(item.get("severity", "critical"), "fail")
        if severity not in ("fail", "warn"):
            problems.append((f"{where}: meta.severity must be 'fail' or 'warn', not {severity!r}",
                             "use \"fail\" or \"warn\""))
        checks.append(Check(kind, dict(kwargs), severity, meta, where=where))
    return checks, problems


def step_checks(step: ValidateStep, expectations_root: Path) -> list[Check]:
    checks: list[Check] = []
    if step.suite:
        path = (expectations_root / step.suite).resolve()
        if expectations_root.resolve() not in path.parents:
            raise SuiteError(f"suite file {step.suite!r} is outside include/expectations/")
        checks += load_suite(path, step.suite)
    checks += [Check(e.type, dict(e.kwargs), e.severity, dict(e.meta), where=f"expectations[{j}]")
               for j, e in enumerate(step.expectations)]
    for i, c in enumerate(checks):
        c.index = i
    return checks


def absent_condition_columns(checks: list[Check], columns: list[str], parser: str = "pandas") -> str | None:
    """Why checks cannot run on a batch of ``columns`` because a row_condition names a column it lacks (GX would
    only say "name 'status' is not defined") or is written for the other GX engine's ``parser``, or None."""
    have = set(columns)
    for c in checks:
        written = c.kwargs.get("condition_parser")
        if c.kwargs.get("row_condition") and written != parser:
            engine = "SQL engine (run_on warehouse in PostgreSQL)" if parser == "great_expectations" else "pandas engine"
            return (f"{c.where or c.type}.kwargs.condition_parser is {written!r}, but this check runs in GX's {engine}, "
                    f"which reads only {parser!r} conditions; fix: write the condition for {parser!r}"
                    + (" (col(\"status\")==\"paid\")" if parser == "great_expectations" else " (status == 'paid')")
                    + (", or run_on batch" if parser == "great_expectations" else ""))
        absent = [col for col in c.condition_columns() if col not in have]
        if absent:
            return (f"{c.where or c.type}.kwargs.row_condition names column(s) {', '.join(absent)} that the batch "
                    f"does not have (it has: {', '.join(columns)}); fix: name a column of the batch in the "
                    "condition, or add the column to the step that makes the batch")
    return None
