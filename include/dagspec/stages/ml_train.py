"""Train: fit preprocessing + estimator on a window, register the challenger, write the training report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dagspec.ml import data as ml_data
from dagspec.ml import drift, features, metrics, report
from dagspec.ml.registry import MODEL_FILE, save_model
from dagspec.spec.ml_steps import CLASSIFICATION_METRICS, TrainStep
from dagspec.stages.context import RunContext, StepFailed
from dagspec.stages.ml_stages import champion_features, json_safe, registry, report_dir, run_key


def run_train(ctx: RunContext, step: TrainStep) -> dict[str, Any]:
    window = ml_data.lookback(ctx.window, step.data.days)
    columns = list(dict.fromkeys([f.column for f in step.features] + [step.target, step.split.column]))
    with ctx.warehouse.session() as session:
        table = ml_data.read_all(ctx, session, step.data, window, columns)
    if table.num_rows < step.min_rows:
        raise StepFailed(f"train {step.id}: {table.num_rows} row(s) between {window.start:%Y-%m-%d} and "
                         f"{window.end:%Y-%m-%d}, fewer than min_rows={step.min_rows}; backfill the data first")
    try:
        df = features.frame(table, step.features, [step.target, step.split.column])
        y = features.target_values(df, step.target, step.task)
        holdout = features.holdout_mask(df, step.split, step.seed)
    except features.DataProblem as exc:
        raise StepFailed(f"train {step.id}: {exc}") from None
    X = df[[f.column for f in step.features]]
    model = features.build_pipeline(step)
    try:
        model.fit(X[~holdout], y[~holdout])
    except ValueError as exc:  # scikit-learn's own parameter checks (InvalidParameterError is a ValueError)
        raise StepFailed(f"train {step.id}: {step.estimator}: {exc}") from None
    scores = metrics.evaluate(model, X[holdout], y[holdout], step.task)
    ctx.log.info("train %s: %s on %d rows (%d held out by %s on %s): %s", step.id, step.estimator, int((~holdout).sum()),
                 int(holdout.sum()), step.split.by, step.split.column,
                 ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))

    reg = registry(ctx)
    champ = reg.champion(step.model)  # taken before this version exists: the one the challenger is up against
    key = run_key(ctx, step.id)
    tags = {"dagspec.dag_id": ctx.pipeline.dag_id, "dagspec.step": step.id, "dagspec.run_key": key,
            "dagspec.window": f"{window.start.isoformat()}/{window.end.isoformat()}",
            "dagspec.features": json.dumps([f.model_dump() for f in step.features]),
            "dagspec.target": step.target, "dagspec.task": step.task}
    run_id = reg.start_run(step.model, tags, run_name=f"{ctx.pipeline.dag_id}.{step.id} {window.end:%Y-%m-%d}")
    try:
        with tempfile.TemporaryDirectory(prefix="dagspec-train-") as tmp:
            folder = Path(tmp)
            (folder / "model").mkdir()
            save_model(model, folder / "model" / MODEL_FILE)
            (folder / "data").mkdir()
            pq.write_table(table.filter(pa.array(holdout)), folder / "data" / "holdout.parquet", compression="zstd")
            (folder / "reference").mkdir()
            reference = drift.profile(df[~holdout], step.features, step.seed)
            (folder / "reference" / "reference.json").write_text(json.dumps(reference))
            for sub in ("model", "data", "reference"):
                reg.log_files(run_id, folder / sub, sub)
        reg.log(run_id, params={"estimator": step.estimator, **{f"param.{k}": v for k, v in step.params.items()},
                                "features": ",".join(f.column for f in step.features), "target": step.target,
                                "split": f"{step.split.by}:{step.split.column}:{step.split.holdout}",
                                "seed": step.seed, "rows_train": int((~holdout).sum()),
                                "rows_holdout": int(holdout.sum())},
                metrics=scores)
        version = reg.register(step.model, run_id, {"dagspec.run_key": key, "dagspec.dag_id": ctx.pipeline.dag_id})
    except BaseException:
        reg.finish(run_id, failed=True)
        raise
    reg.finish(run_id)

    curve = champion_curve(ctx, step, reg, champ, version, table.filter(pa.array(holdout)))
    html = write_report(ctx, step, reg, version, run_id, X[holdout], y[holdout], model, scores, None, curve, None)
    ctx.log.info("train %s: registered %s version %s (run %s)", step.id, step.model, version, run_id)
    ctx.log.info("training report: %s", html.as_uri())
    return json_safe({"model": step.model, "version": version, "run_id": run_id, "rows_train": int((~holdout).sum()),
                      "rows_holdout": int(holdout.sum()), "metrics": scores, "report": str(html)})


def champion_curve(ctx: RunContext, step: TrainStep, reg, champ, version: str, holdout: pa.Table):
    """(version, model, its inputs framed from the holdout rows) of the champion `champ`, for its ROC curve in
    the report; None when there is none, it is this version, or it cannot score these rows."""
    if champ is None or step.task != "classification" or str(champ.version) == str(version):
        return None
    try:
        feats, _, task = champion_features(reg, champ)
        if task != "classification":
            return None
        X = features.frame(holdout, feats)[[f.column for f in feats]]
        return str(champ.version), reg.load(champ.run_id), X  # the registry's loader: skops, trusted types only
    except (features.DataProblem, StepFailed) as exc:  # the report is a convenience: draw the challenger alone
        ctx.log.warning("report: no ROC curve for champion v%s: %s", champ.version, exc)
        return None


def write_report(ctx: RunContext, step: TrainStep, reg, version: str, run_id: str, X_hold, y_hold, model,
                 scores: dict[str, float], champion_scores: dict[str, float] | None, champion,
                 decision: dict | None) -> Path:
    """`champion`: None, or what `champion_curve` returns (its ROC curve is drawn beside the challenger's)."""
    folder = report_dir(ctx, step.id, f"version_{version}")
    history = [{"version": v["version"], "champion": v["champion"],
                "metrics": {m: v["metrics"][m] for m in scores if m in v["metrics"]}} for v in reg.versions(step.model)]
    shown = ["roc_auc", "pr_auc", "f1"] if step.task == "classification" else ["rmse", "mae", "r2"]
    images = [report.history_png(folder / "metric_history.png", history, shown)]
    curves: dict[str, str] = {}
    if step.task == "classification":
        champ = metrics.positive_proba(champion[1], champion[2]) if champion is not None else None
        images.append(report.roc_png(folder / "roc.png", y_hold, metrics.positive_proba(model, X_hold), champ,
                                     label=f"challenger v{version}",
                                     champion_label=f"champion v{champion[0]}" if champion else "champion"))
        if images[-1] is not None and champion is not None:
            curves["ROC curves"] = f"challenger v{version} and champion v{champion[0]} on the same holdout rows"
    else:
        images.append(report.residual_png(folder / "residuals.png", y_hold, np.asarray(model.predict(X_hold))))
    images.append(report.importance_png(folder / "feature_importance.png",
                                        features.importances(model, X_hold, y_hold, step.task, step.seed)))
    facts = {"model": step.model, "version": version, "run": run_id, "pipeline": ctx.pipeline.dag_id,
             "estimator": step.estimator, "params": json.dumps(step.params), "holdout rows": len(y_hold),
             "window": f"{ml_data.lookback(ctx.window, step.data.days).start:%Y-%m-%d} .. {ctx.window.end:%Y-%m-%d}",
             **curves}
    ordered = {m: scores[m] for m in (CLASSIFICATION_METRICS if step.task == "classification" else scores) if m in scores}
    html = report.write_html(folder / "report.html", title=f"{step.model} v{version}", facts=facts, metrics=ordered,
                             champion_metrics=champion_scores, images=[p for p in images if p], decision=decision)
    try:
        reg.log_files(run_id, folder, "report")
    except Exception as exc:  # the report is a convenience; the registry entry stands without it
        ctx.log.warning("could not copy the report to the registry: %s", exc)
    return html
