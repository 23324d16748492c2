"""Holdout metrics per task type, and the promotion rule (pure functions: easy to test, easy to read)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from dagspec.spec.ml_steps import LOWER_IS_BETTER, PromoteStep


def classification(y: np.ndarray, proba: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

    predicted = (proba >= threshold).astype(int)
    both = len(np.unique(y)) == 2  # AUCs are undefined on a holdout with one class
    return {
        "roc_auc": float(roc_auc_score(y, proba)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, proba)) if both else math.nan,
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1])),
    }


def regression(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "rmse": float(math.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)),
    }


def evaluate(pipeline, X, y: np.ndarray, task: str, threshold: float = 0.5) -> dict[str, float]:
    if task == "classification":
        return classification(y, positive_proba(pipeline, X), threshold)
    return regression(y, pipeline.predict(X))


def positive_proba(pipeline, X) -> np.ndarray:
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


def decide(step: PromoteStep, challenger: dict[str, float], champion: dict[str, float] | None,
           champion_version: str | None = None) -> Decision:
    reasons: list[str] = []
    checks: list[dict] = []
    ok = True
    if champion is None:
        if not step.minimums:
            reasons.append("first model and no minimums set: promoted")
        for metric, bound in step.minimums.items():
            value = challenger.get(metric, math.nan)
            lower = metric in LOWER_IS_BETTER
            passed = not math.isnan(value) and (value <= bound if lower else value >= bound)
            checks.append({"check": "minimum", "metric": metric, "value": value, "bound": bound, "passed": passed})
            reasons.append(f"{metric} {value:.4f} {'<=' if lower else '>='} {bound} (first-model "
                           f"{'maximum' if lower else 'minimum'}): {'ok' if passed else 'FAILED'}")
            ok &= passed
        return Decision(ok, reasons, step.primary, challenger, None, None, checks)

    new, old = challenger.get(step.primary, math.nan), champion.get(step.primary, math.nan)
    delta = gain(step.primary, new, old)
    if math.isnan(new):
        passed = False
    elif math.isnan(old):
        passed = True  # the champion cannot be measured on this holdout (e.g. one class); the challenger can
    else:
        passed = delta > step.margin
    checks.append({"check": "primary", "metric": step.primary, "challenger": new, "champion": old,
                   "gain": delta, "margin": step.margin, "passed": passed})
    reasons.append(f"{step.primary}: challenger {new:.4f} vs champion v{champion_version} {old:.4f}, gain {delta:+.4f} "
                   f"{'>' if passed else '<='} margin {step.margin}: {'ok' if passed else 'not better enough'}")
    ok &= passed
    for guard in step.guards:
        g_new, g_old = challenger.get(guard.metric, math.nan), champion.get(guard.metric, math.nan)
        worse = -gain(guard.metric, g_new, g_old)
        g_ok = not math.isnan(g_new) and (math.isnan(g_old) or worse <= guard.max_degradation)
        checks.append({"check": "guard", "metric": guard.metric, "challenger": g_new, "champion": g_old,
                       "degradation": worse, "limit": guard.max_degradation, "passed": g_ok})
        reasons.append(f"guard {guard.metric}: challenger {g_new:.4f} vs champion {g_old:.4f}, degrades by "
                       f"{max(worse, 0):.4f} (limit {guard.max_degradation}): {'ok' if g_ok else 'FAILED'}")
        ok &= g_ok
    return Decision(ok, reasons, step.primary, challenger, champion, champion_version, checks)
