"""Rules that keep a staged rollout decidable and a monitor watching the model it names (issue #17).

A canary is promoted or rolled back only on the realised metric the monitor step's labels give. A definition
whose monitor of the model has no labels, whose rollout metric is not one the labels can measure for the
model's kind of target, or whose labels arrive after the rollout's deadline would leave the canary scoring
its share with no decision; these are refused at validate. A rollout whose monitor lives in another definition
cannot be seen from this one: its deadline (Rollout.timeout_days) rolls it back at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dagspec.spec.base import StepBase
from dagspec.spec.ml_steps import REGRESSION_METRICS, EvaluateStep, PromoteStep, ScoreStep, TrainStep
from dagspec.spec.monitor_step import MonitorStep

Loc = tuple[str | int, ...]
# What realised labels can measure of a multi-class model: the score table keeps only the most probable class
# and its probability, so nothing that needs every class's probability (log_loss) or one positive class. Of a
# 0/1 model they measure the holdout's 0/1 metrics, none of these averaged ones but accuracy.
MULTICLASS_REALISED = ("accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro")


class Pipeline(Protocol):
    @property
    def steps(self) -> Sequence[StepBase]: ...


def _train_of(steps: Sequence[StepBase], promote: PromoteStep) -> TrainStep | None:
    by_id = {s.id: s for s in steps}
    evaluate = by_id.get(promote.input)
    train = by_id.get(evaluate.input) if isinstance(evaluate, EvaluateStep) else None
    return train if isinstance(train, TrainStep) else None


def metric_fits(metric: str, train: TrainStep) -> str | None:
    """Why `train`'s model cannot be judged on the realised `metric`; None when it can (or cannot be told yet:
    undeclared classes are known only once a version is trained)."""
    return metric_fit(metric, train.task, True if train.classes is not None else None)


def metric_fit(metric: str, task: str, multiclass: bool | None) -> str | None:
    """Why a model of `task` (`multiclass`: more than two classes; None: not known yet) cannot be judged on the
    realised `metric`; None when it can. The monitor step asks again at run time, when a version tells."""
    if task == "regression":
        return None if metric in REGRESSION_METRICS else f"use one of: {', '.join(REGRESSION_METRICS)}"
    if multiclass:
        return None if metric in MULTICLASS_REALISED else f"use one of: {', '.join(MULTICLASS_REALISED)}"
    if metric in REGRESSION_METRICS:
        return f"use a classification metric, not {metric}"
    if multiclass is False and metric in MULTICLASS_REALISED and metric != "accuracy":
        return f"use a 0/1 metric (roc_auc, pr_auc, f1, precision, recall, accuracy, log_loss, ...), not {metric}"
    return None


def monitor_problems(steps: Sequence[StepBase]) -> list[tuple[Loc, str, str]]:
    """A monitor must read the scores of its own model: its references and the canary it judges are that model's."""
    by_id = {s.id: s for s in steps}
    out: list[tuple[Loc, str, str]] = []
    for i, step in enumerate(steps):
        if not isinstance(step, MonitorStep):
            continue
        score = by_id.get(step.input)
        if isinstance(score, ScoreStep) and score.model != step.model:
            out.append((("steps", i, "model"), f"monitor step {step.id!r} watches model {step.model!r}, but score "
                        f"step {score.id!r} scores model {score.model!r}",
                        f"set 'model' to {score.model!r}, or monitor a score step of {step.model!r}"))
    return out


def rollout_problems(pipeline: Pipeline) -> list[tuple[Loc, str, str]]:
    steps = pipeline.steps
    out = monitor_problems(steps)
    for i, step in enumerate(steps):
        if not isinstance(step, PromoteStep) or step.rollout is None:
            continue
        rule, train = step.rollout, _train_of(steps, step)
        if train is None:  # the reference rules report a promote step without its evaluate and train
            continue
        fix = metric_fits(rule.metric, train)
        if fix is not None:
            out.append((("steps", i, "rollout", "metric"), f"the canary of model {train.model!r} cannot be judged on "
                        f"the realised {rule.metric}: it is not measured for this model's target", fix))
        monitors = [m for m in steps if isinstance(m, MonitorStep) and m.model == train.model]
        if monitors and all(m.labels is None for m in monitors):
            names = ", ".join(repr(m.id) for m in monitors)
            out.append((("steps", i, "rollout"), f"the canary of model {train.model!r} can never be decided: monitor "
                        f"step {names} has no labels, and a rollout is decided only on the realised {rule.metric} "
                        "its labels give", f"give monitor step {monitors[0].id!r} labels: data, keys, label, "
                        "delay_days, metric and threshold; or remove 'rollout' to promote without a canary"))
        for m in monitors:
            if m.labels is not None and m.labels.delay_days >= rule.timeout_days:
                out.append((("steps", i, "rollout", "timeout_days"), f"timeout_days {rule.timeout_days} is not after "
                            f"the labels of monitor step {m.id!r} arrive (delay_days {m.labels.delay_days}): the "
                            "canary would time out before its window's labels are in",
                            f"set timeout_days above {m.labels.delay_days}"))
    trains = {s.model: s for s in steps if isinstance(s, TrainStep)}
    for i, step in enumerate(steps):
        train = trains.get(step.model) if isinstance(step, MonitorStep) and step.labels is not None else None
        if train is not None and (fix := metric_fits(step.labels.metric, train)):
            out.append((("steps", i, "labels", "metric"), f"the realised {step.labels.metric} of model "
                        f"{train.model!r} is not measured for its target", fix))
    return out


__all__ = ["MULTICLASS_REALISED", "metric_fit", "metric_fits", "monitor_problems", "rollout_problems"]
