"""Results in GX's own format (SUMMARY), for the checks dagspec computes itself: the result dict, observed
values as GX's JSON shows them, and GX's range test."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

from dagspec.checks.bounds import CheckError, bound
from dagspec.spec.suites import Check


def observed(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, float) and math.isnan(v):
        return None  # GX reports no observed value for NaN
    if isinstance(v, bytes):
        return v.hex()
    return v


def bound_error(value: Any, column_type: str, key: str) -> str:
    try:
        bound(value, column_type, key)
    except CheckError as exc:
        return str(exc)
    return ""


def in_range(value: object, k: dict) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    lo, hi = k.get("min_value"), k.get("max_value")
    if lo is not None and (value <= lo if k.get("strict_min") else value < lo):
        return False
    if hi is not None and (value >= hi if k.get("strict_max") else value > hi):
        return False
    return True


def percent(part: int, whole: int) -> float | None:
    return part / whole * 100 if whole else None


def gx_result(check: Check, success: bool, result: dict, error: str | None = None) -> dict[str, Any]:
    return {
        "success": success,
        "expectation_config": check.config(),
        "result": result,
        "meta": {},
        "exception_info": {"raised_exception": error is not None, "exception_traceback": None,
                           "exception_message": error},
    }
