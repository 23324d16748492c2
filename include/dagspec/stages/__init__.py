"""Stages: what each step kind does at run time. One function per kind, called by the runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dagspec.plan import ML_KINDS
from dagspec.stages.context import RunContext, StepFailed
from dagspec.stages.ml import stage as ml_stage


def stage_for(kind: str) -> Callable[..., Any]:
    # Imported on demand: a task pays only for its own stage's dependencies.
    if kind == "extract":
        from dagspec.stages.extract import run_extract as fn
    elif kind == "validate":
        from dagspec.stages.validate import run_validate as fn
    elif kind == "transform":
        from dagspec.stages.transform import run_transform as fn
    elif kind == "publish":
        from dagspec.stages.publish import run_publish as fn
    elif kind in ML_KINDS:
        fn = ml_stage(kind)
    else:
        raise ValueError(f"no stage for step kind {kind!r}")
    return fn


__all__ = ["RunContext", "StepFailed", "stage_for"]
