"""Which metrics a classifier's promote step may use once its target has more than two classes.

At validate when the train step declares its `classes`; at train time (stages/ml/train.py) when only the rows
tell. Either way the message names the promote step's key and the metrics that do apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic_core import PydanticCustomError

from dagspec.spec.base import StepBase
from dagspec.spec.ml_steps import MULTICLASS_METRICS, EvaluateStep, PromoteStep, TrainStep


class Pipeline(Protocol):
    """What is read of a pipeline here (spec/pipeline.py's model; a Protocol so that it can call this module)."""

    @property
    def steps(self) -> Sequence[StepBase]: ...

# Metrics of one positive class (at a threshold, or ranking it): undefined for three or more classes.
BINARY_ONLY = ("roc_auc", "pr_auc", "f1", "precision", "recall", "npv", "specificity")
MULTICLASS_ONLY = tuple(m for m in MULTICLASS_METRICS if m not in ("accuracy", "log_loss"))

Loc = tuple[str | int, ...]


def _promotes_of(pipeline: Pipeline, train_id: str) -> list[tuple[int, PromoteStep]]:
    evaluates = {s.id for s in pipeline.steps if isinstance(s, EvaluateStep) and s.input == train_id}
    return [(i, s) for i, s in enumerate(pipeline.steps) if isinstance(s, PromoteStep) and s.input in evaluates]


def metric_problems(pipeline: Pipeline, train: TrainStep, multiclass: bool) -> list[tuple[Loc, str, str]]:
    """Metrics of the promote steps deciding on `train`'s model that do not exist for its kind of target."""
    if train.task != "classification":
        return []
    wrong, right = (BINARY_ONLY, MULTICLASS_METRICS) if multiclass else (MULTICLASS_ONLY, None)
    what = "a multi-class target" if multiclass else "a 0/1 target"
    out: list[tuple[Loc, str, str]] = []
    for i, step in _promotes_of(pipeline, train.id):
        used: list[tuple[Loc, str]] = [(("primary",), step.primary)]
        used += [(("guards", j, "metric"), g.metric) for j, g in enumerate(step.guards)]
        used += [(("minimums", m), m) for m in step.minimums]
        for loc, metric in used:
            if metric in wrong:
                fix = (f"use one of: {', '.join(right)}" if right
                       else "use f1, precision or recall (one positive class), or accuracy / log_loss")
                out.append((("steps", i, *loc), f"{metric} is not measured for {what} (train step {train.id!r}, "
                            f"target {train.target!r})", fix))
    return out


def declared_problems(pipeline: Pipeline) -> list[tuple[Loc, str, str]]:
    out: list[tuple[Loc, str, str]] = []
    for i, step in enumerate(pipeline.steps):
        if not isinstance(step, TrainStep) or step.classes is None:
            continue
        if step.task != "classification":
            out.append((("steps", i, "classes"), f"{step.estimator} is a regressor: it has no classes",
                        "remove 'classes', or choose a classifier"))
            continue
        if len(set(step.classes)) != len(step.classes):
            out.append((("steps", i, "classes"), "a class is listed twice", "list each class once"))
        out += metric_problems(pipeline, step, multiclass=True)
    return out


def raise_declared_problems(pipeline: Pipeline) -> None:
    """For the pipeline's validator: every problem at its own path (spec/load.py lists them)."""
    problems = declared_problems(pipeline)
    if problems:
        raise PydanticCustomError("dagspec_problems", "{summary}", {
            "summary": "; ".join(m for _, m, _ in problems), "problems": problems})
