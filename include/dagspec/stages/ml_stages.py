"""Shared plumbing of the model stages: dispatch by kind, the registry, the hand-off key, JSON-safe results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from dagspec.stages.context import RunContext, StepFailed


def stage(kind: str) -> Callable[..., Any]:
    if kind == "train":
        from dagspec.stages.ml_train import run_train as fn
    elif kind == "evaluate":
        from dagspec.stages.ml_evaluate import run_evaluate as fn
    elif kind == "promote":
        from dagspec.stages.ml_evaluate import run_promote as fn
    elif kind == "score":
        from dagspec.stages.ml_score import run_score as fn
    elif kind == "drift":
        from dagspec.stages.ml_drift import run_drift as fn
    else:
        raise ValueError(f"no model stage for step kind {kind!r}")
    return fn


def registry(ctx: RunContext):
    from dagspec.ml.registry import Registry

    cached = getattr(ctx, "_ml_registry", None)
    if cached is None:
        cached = Registry.open(ctx.resolver)
        ctx._ml_registry = cached  # one client per task: opening the store costs a migration check
    return cached


def run_key(ctx: RunContext, train_step_id: str) -> str:
    """What ties a train step's version to the evaluate and promote steps of the same run."""
    w = ctx.window
    return f"{ctx.pipeline.dag_id}/{train_step_id}/{w.start.isoformat()}/{w.end.isoformat()}"


def report_dir(ctx: RunContext, step_id: str, *parts: str) -> Path:
    folder = ctx.reports_root.joinpath(ctx.pipeline.dag_id, step_id, *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def json_safe(value: Any) -> Any:
    """NaN/inf become None: XCom and JSON readers reject them."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_record(path: Path, record: dict[str, Any]) -> Path:
    path.write_text(json.dumps(json_safe(record), indent=1, default=str) + "\n")
    return path


def champion_features(reg, version) -> tuple[list, str, str]:
    """(features, target, task) the version was trained with, as its training run recorded them."""
    from dagspec.spec.ml_steps import Feature

    run = reg.client.get_run(version.run_id)
    try:
        features = [Feature.model_validate(f) for f in json.loads(run.data.tags["dagspec.features"])]
        return features, run.data.tags["dagspec.target"], run.data.tags.get("dagspec.task", "classification")
    except KeyError:
        raise StepFailed(f"model version {version.version} was not made by dagspec (no feature list recorded)") from None


__all__ = ["StepFailed", "champion_features", "json_safe", "registry", "report_dir", "run_key", "stage", "write_record"]
