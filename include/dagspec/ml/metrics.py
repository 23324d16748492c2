"""Holdout metrics per task type, and the promotion rule (pure functions: easy to test, easy to read)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dagspec.ml import multiclass
from dagspec.ml.features import classes_of
from dagspec.spec.ml_steps import LOWER_IS_BETTER, PromoteStep

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline as SkPipeline


CONFUSION = ("tp", "fp", "tn", "fn")  # counts at the threshold, reported beside the metrics (never promoted on)


def classification(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Ranking metrics over the probabilities, and at ``threshold`` (a row is predicted positive when its
    probability is at least that): F1, precision, recall, accuracy, NPV, specificity and the confusion counts."""
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = (proba >= threshold).astype(int)
    both = len(np.unique(y)) == 2  # AUCs are undefined on a holdout with one class
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, predicted, labels=[0, 1]).ravel())
    return {
        "roc_auc": float(roc_auc_score(y, proba)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, proba)) if both else math.nan,
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "accuracy": (tp + tn) / len(y) if len(y) else math.nan,
        "npv": tn / (tn + fn) if tn + fn else math.nan,  # of the rows predicted negative, the share that is
        "specificity": tn / (tn + fp) if tn + fp else math.nan,
        "tp": float(tp), "fp": float(fp), "tn": float(tn), "fn": float(fn),
    }


def regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(math.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }


def evaluate(pipeline: SkPipeline, X: pd.DataFrame, y: np.ndarray, task: str, threshold: float = 0.5) -> dict[str, float]:
    """Holdout metrics; a multi-class model's come from multiclass.scores (`threshold` does not apply)."""
    if task == "classification" and (classes := classes_of(pipeline)) is not None:
        return multiclass.scores(y, pipeline.predict_proba(X), classes)
    if task == "classification":
        return classification(y, positive_proba(pipeline, X), threshold)
    return regression(y, pipeline.predict(X))


def scored_probability(pipeline: SkPipeline, X: pd.DataFrame) -> np.ndarray:
    """The `probability` a score step writes: of class 1 for a 0/1 model, of the predicted (most probable) class
    for a multi-class one."""
    if classes_of(pipeline) is not None:
        return pipeline.predict_proba(X).max(axis=1)
    return positive_proba(pipeline, X)


def positive_proba(pipeline: SkPipeline, X: pd.DataFrame) -> np.ndarray:
    proba = pipeline.predict_proba(X)
    classes = list(pipeline.classes_)
    return proba[:, classes.index(1)] if 1 in classes else np.zeros(len(X))


@dataclass
class Decision:
    promoted: bool
    reasons: list[str]
    primary: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None = None
    checks: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def gain(metric: str, new: float, old: float) -> float:
    """How much better `new` is than `old` (positive: better), whatever the metric's direction."""
    return (old - new) if metric in LOWER_IS_BETTER else (new - old)


def _nan(value: float) -> bool:
    return math.isnan(value)


def _unmeasured(new: float, old: float) -> list[str]:
    return [side for side, value in (("challenger", new), ("champion", old)) if _nan(value)]


def decide(step: PromoteStep, challenger: dict[str, float], champion: dict[str, float] | None,
           champion_version: str | None = None, champion_note: str | None = None) -> Decision:
    """Promote only on evidence: a metric that cannot be measured (NaN or missing) never counts in the
    challenger's favour. A NaN challenger never wins; a NaN champion cannot be beaten on this holdout
    (the champion stays, and the reason says so); a NaN guard counts as degraded."""
    reasons: list[str] = []
    checks: list[dict] = []
    ok = True
    if champion is None:
        primary = challenger.get(step.primary, math.nan)
        if _nan(primary):  # even the first model must be measurable on what the definition cares about
            checks.append({"check": "primary", "metric": step.primary, "challenger": primary, "champion": None,
                           "unmeasured": ["challenger"], "passed": False})
            reasons.append(f"{step.primary}: the challenger cannot be measured on this holdout (NaN, e.g. a holdout "
                           "with a single class): first model not promoted")
            ok = False
        elif not step.minimums:
            reasons.append("first model and no minimums set: promoted")
        for metric, bound in step.minimums.items():
            value = challenger.get(metric, math.nan)
            lower = metric in LOWER_IS_BETTER
            passed = not _nan(value) and (value <= bound if lower else value >= bound)
            checks.append({"check": "minimum", "metric": metric, "value": value, "bound": bound, "passed": passed})
            reasons.append(f"{metric} {value:.4f} {'<=' if lower else '>='} {bound} (first-model "
                           f"{'maximum' if lower else 'minimum'}): {'ok' if passed else 'FAILED'}"
                           + (" (NaN: cannot be measured on this holdout)" if _nan(value) else ""))
            ok &= passed
        return Decision(ok, reasons, step.primary, challenger, None, None, checks)

    new, old = challenger.get(step.primary, math.nan), champion.get(step.primary, math.nan)
    delta = gain(step.primary, new, old)
    unmeasured = _unmeasured(new, old)
    passed = not unmeasured and delta > step.margin
    checks.append({"check": "primary", "metric": step.primary, "challenger": new, "champion": old,
                   "gain": delta, "margin": step.margin, "unmeasured": unmeasured, "passed": passed})
    if "challenger" in unmeasured:
        reasons.append(f"{step.primary}: challenger {new:.4f} vs champion v{champion_version} {old:.4f}: the challenger "
                       "cannot be measured on this holdout (NaN): not promoted, champion unchanged")
    elif unmeasured:
        reasons.append(f"{step.primary}: challenger {new:.4f} vs champion v{champion_version} {old:.4f}: the champion "
                       "cannot be measured on this holdout (NaN), so the challenger cannot be shown to beat it: not "
                       "promoted, champion unchanged (if the challenger should win, make it the champion by hand "
                       "with `dagspec models rollback MODEL VERSION`)")
    else:
        reasons.append(f"{step.primary}: challenger {new:.4f} vs champion v{champion_version} {old:.4f}, gain "
                       f"{delta:+.4f} {'>' if passed else '<='} margin {step.margin}: "
                       f"{'ok' if passed else 'not better enough'}")
    if champion_note and not champion:  # no champion metric at all: the evaluate step says why
        reasons.append(f"evaluate: {champion_note}")
    ok &= passed
    for guard in step.guards:
        g_new, g_old = challenger.get(guard.metric, math.nan), champion.get(guard.metric, math.nan)
        worse = -gain(guard.metric, g_new, g_old)
        g_unmeasured = _unmeasured(g_new, g_old)
        g_ok = not g_unmeasured and worse <= guard.max_degradation
        checks.append({"check": "guard", "metric": guard.metric, "challenger": g_new, "champion": g_old,
                       "degradation": worse, "limit": guard.max_degradation, "unmeasured": g_unmeasured,
                       "passed": g_ok})
        if g_unmeasured:
            reasons.append(f"guard {guard.metric}: challenger {g_new:.4f} vs champion {g_old:.4f}: the "
                           f"{' and the '.join(g_unmeasured)} cannot be measured on this holdout (NaN), treated as "
                           f"degraded (limit {guard.max_degradation}): FAILED")
        else:
            reasons.append(f"guard {guard.metric}: challenger {g_new:.4f} vs champion {g_old:.4f}, degrades by "
                           f"{max(worse, 0):.4f} (limit {guard.max_degradation}): {'ok' if g_ok else 'FAILED'}")
        ok &= g_ok
    return Decision(ok, reasons, step.primary, challenger, champion, champion_version, checks)
