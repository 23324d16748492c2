"""Shared plumbing of the model stages: the hand-off key, report folders and records, JSON-safe results,
what a registered version was trained on."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.errors import StepFailed
from dagspec.spec.ml_steps import Feature
from dagspec.stages.context import RunContext

if TYPE_CHECKING:
    from dagspec.ml.registry import Registry


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


def champion_features(reg: Registry, version: Any) -> tuple[list[Feature], str, str]:
    """(features, target, task) the version was trained with, as its training run recorded them."""
    run = reg.client.get_run(version.run_id)
    try:
        features = [Feature.model_validate(f) for f in json.loads(run.data.tags["dagspec.features"])]
        return features, run.data.tags["dagspec.target"], run.data.tags.get("dagspec.task", "classification")
    except KeyError:
        raise StepFailed(f"model version {version.version} was not made by dagspec (no feature list recorded)") from None


CLASSES_TAG = "dagspec.classes"  # a classifier's labels, JSON in the model's order; null for a 0/1 model


def version_classes(reg: Registry, version: Any) -> list | None:
    """A multi-class version's labels (None for a 0/1 model or a regressor): from its training run's tag, or, for
    a version trained before that tag, from the model itself."""
    run = reg.client.get_run(version.run_id)
    if CLASSES_TAG in run.data.tags:
        return json.loads(run.data.tags[CLASSES_TAG])
    if run.data.tags.get("dagspec.task", "classification") != "classification":
        return None
    from dagspec.ml.features import classes_of

    return classes_of(reg.load(version.run_id))


__all__ = ["CLASSES_TAG", "champion_features", "version_classes", "json_safe", "report_dir", "run_key", "write_record"]
