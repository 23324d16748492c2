"""The expectations a validate step runs: inline ones plus a GX suite file, each with a severity."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagspec.spec.expectation_types import check_expectation_type

# GX 1.x's own severity names; dagspec's are fail (stop the run) and warn (record, continue).
_GX_SEVERITY = {"critical": "fail", "warning": "warn", "info": "warn"}


@dataclass
class Check:
    type: str
    kwargs: dict[str, Any]
    severity: str = "fail"
    meta: dict[str, Any] = field(default_factory=dict)
    index: int = 0

    def config(self) -> dict[str, Any]:
        """GX's expectation_config as it appears in a validation result."""
        return {"type": self.type, "kwargs": dict(self.kwargs), "meta": {**self.meta, "severity": self.severity},
                "severity": "critical" if self.severity == "fail" else "warning"}

    def columns(self) -> list[str] | None:
        """Columns this check reads; None when it needs the whole table."""
        k = self.kwargs
        cols = [k[n] for n in ("column", "column_A", "column_B") if isinstance(k.get(n), str)]
        cols += list(k.get("column_list") or [])
        return cols or None


class SuiteError(ValueError):
    pass


def load_suite(path: Path, shown_as: str) -> list[Check]:
    """Read a GX suite JSON file (1.x: name/expectations[type]; 0.x: expectation_suite_name/expectation_type)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"suite file {shown_as} does not exist under include/expectations/") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"suite file {shown_as}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    items = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise SuiteError(f"suite file {shown_as}: no 'expectations' list (is it a GX expectation suite?)")
    checks = []
    for i, item in enumerate(items):
        where = f"suite file {shown_as}: expectations[{i}]"
        if not isinstance(item, dict):
            raise SuiteError(f"{where}: expected an object")
        kind = item.get("type") or item.get("expectation_type")
        if not kind:
            raise SuiteError(f"{where}: no 'type'")
        try:
            check_expectation_type(kind)
        except ValueError as exc:
            raise SuiteError(f"{where}: {exc}") from None
        meta = dict(item.get("meta") or {})
        severity = meta.get("severity") or _GX_SEVERITY.get(item.get("severity", "critical"), "fail")
        if severity not in ("fail", "warn"):
            raise SuiteError(f"{where}: meta.severity must be 'fail' or 'warn', not {severity!r}")
        checks.append(Check(kind, dict(item.get("kwargs") or {}), severity, meta))
    return checks


def step_checks(step, expectations_root: Path) -> list[Check]:
    checks: list[Check] = []
    if step.suite:
        path = (expectations_root / step.suite).resolve()
        if expectations_root.resolve() not in path.parents:
            raise SuiteError(f"suite file {step.suite!r} is outside include/expectations/")
        checks += load_suite(path, step.suite)
    checks += [Check(e.type, dict(e.kwargs), e.severity, dict(e.meta)) for e in step.expectations]
    for i, c in enumerate(checks):
        c.index = i
    return checks
