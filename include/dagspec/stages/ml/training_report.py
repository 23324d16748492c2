"""The training report of a version: its metrics, history and curves beside the champion's, as HTML.

Train writes it; promote rewrites it with the decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dagspec.errors import StepFailed
from dagspec.ml import data as ml_data
from dagspec.ml import features, metrics, multiclass, report
from dagspec.spec.ml_steps import CLASSIFICATION_METRICS, MULTICLASS_METRICS, TrainStep
from dagspec.stages.context import RunContext
from dagspec.stages.ml.common import champion_features, report_dir

if TYPE_CHECKING:
    from dagspec.ml.registry import Registry


def champion_curve(ctx: RunContext, step: TrainStep, reg: Registry, champ: Any, version: str,
                   holdout: pa.Table) -> tuple[str, Any, Any] | None:
    """(version, model, its inputs framed from the holdout rows) of the champion `champ`, for its ROC curve in
    the report; None when there is none, it is this version, or it cannot score these rows."""
    if champ is None or step.task != "classification" or str(champ.version) == str(version):
        return None
    try:
        feats, _, task = champion_features(reg, champ)
        if task != "classification" or step.classes is not None:  # no ROC curve of several classes
            return None
        X = features.frame(holdout, feats)[[f.column for f in feats]]
        return str(champ.version), reg.load(champ.run_id), X  # the registry's loader: skops, trusted types only
    except (features.DataProblem, StepFailed) as exc:  # the report is a convenience: draw the challenger alone
        ctx.log.warning("report: no ROC curve for champion v%s: %s", champ.version, exc)
        return None


def write_report(ctx: RunContext, step: TrainStep, reg: Registry, version: str, run_id: str, X_hold: Any, y_hold: Any,
                 model: Any, scores: dict[str, float], champion_scores: dict[str, float] | None,
                 champion: tuple[str, Any, Any] | None, decision: dict | None, threshold: float = 0.5) -> Path:
    """`champion`: None, or what `champion_curve` returns (its ROC curve is drawn beside the challenger's).
    `threshold`: the probability cut the counts and threshold metrics in `scores` were taken at."""
    folder = report_dir(ctx, step.id, f"version_{version}")
    history = [{"version": v["version"], "champion": v["champion"],
                "metrics": {m: v["metrics"][m] for m in scores if m in v["metrics"]}} for v in reg.versions(step.model)]
    classes = features.classes_of(model)
    shown = (["rmse", "mae", "r2"] if step.task != "classification" else ["roc_auc", "pr_auc", "f1"] if classes is None
             else ["accuracy", "f1_macro", "log_loss"])
    images = [report.history_png(folder / "metric_history.png", history, shown)]
    curves: dict[str, str] = {}
    if step.task == "classification" and classes is None:
        champ = metrics.positive_proba(champion[1], champion[2]) if champion is not None else None
        images.append(report.roc_png(folder / "roc.png", y_hold, metrics.positive_proba(model, X_hold), champ,
                                     label=f"challenger v{version}",
                                     champion_label=f"champion v{champion[0]}" if champion else "champion"))
        if images[-1] is not None and champion is not None:
            curves["ROC curves"] = f"challenger v{version} and champion v{champion[0]} on the same holdout rows"
    elif step.task != "classification":
        images.append(report.residual_png(folder / "residuals.png", y_hold, np.asarray(model.predict(X_hold))))
    images.append(report.importance_png(folder / "feature_importance.png",
                                        features.importances(model, X_hold, y_hold, step.task, step.seed)))
    facts = {"model": step.model, "version": version, "run": run_id, "pipeline": ctx.pipeline.dag_id,
             "estimator": step.estimator, "params": json.dumps(step.params), "holdout rows": len(y_hold),
             "window": f"{ml_data.lookback(ctx.window, step.data.days).start:%Y-%m-%d} .. {ctx.window.end:%Y-%m-%d}",
             **curves, **({"threshold": threshold} if step.task == "classification" and classes is None else {}),
             **({"classes": ", ".join(map(str, classes))} if classes else {})}
    names = (scores if step.task != "classification" else MULTICLASS_METRICS if classes
             else (*CLASSIFICATION_METRICS, *metrics.CONFUSION))
    ordered = {m: scores[m] for m in names if m in scores}
    table = multiclass.per_class(y_hold, model.predict_proba(X_hold), classes) if classes else None
    html = report.write_html(folder / "report.html", title=f"{step.model} v{version}", facts=facts, metrics=ordered,
                             champion_metrics=champion_scores, images=[p for p in images if p], decision=decision,
                             per_class=table)
    try:
        reg.log_files(run_id, folder, "report")
    except Exception as exc:  # the report is a convenience; the registry entry stands without it
        ctx.log.warning("could not copy the report to the registry: %s", exc)
    return html
