"""Train: fit preprocessing + estimator on a window, register the challenger, write the training report."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dagspec.errors import DataNotYet, StepFailed, StepSkipped
from dagspec.ml import data as ml_data
from dagspec.ml import drift, features, metrics
from dagspec.ml.model_files import save_model_dir
from dagspec.ml.registry import MODEL_DIR
from dagspec.spec.ml_classes import metric_problems
from dagspec.spec.ml_steps import TrainStep
from dagspec.stages.context import RunContext
from dagspec.stages.ml.common import CLASSES_TAG, json_safe, run_key
from dagspec.stages.ml.training_report import champion_curve, write_report


def run_train(ctx: RunContext, step: TrainStep) -> dict[str, Any]:
    window = ml_data.lookback(ctx.window, step.data.days)
    columns = list(dict.fromkeys([f.column for f in step.features] + [step.target, step.split.column]))
    with ctx.warehouse.session() as session:
        try:
            table = ml_data.read_all(ctx, session, step.data, window, columns)
        except DataNotYet as exc:
            # A new deployment: the pipeline that builds the features has not run yet, and no model depends on
            # this one. With a champion, missing data is a fault (the model would go stale unnoticed).
            if ctx.model_registry.champion(step.model) is not None:
                raise
            raise StepSkipped(f"train {step.id}: no training data yet and no champion of {step.model!r} to keep "
                              f"fresh ({exc}); the first run that writes the data and asks for a retrain trains "
                              "it") from None
    if table.num_rows < step.min_rows:
        raise StepFailed(f"train {step.id}: {table.num_rows} row(s) between {window.start:%Y-%m-%d} and "
                         f"{window.end:%Y-%m-%d}, fewer than min_rows={step.min_rows}; backfill the data first")
    try:
        df = features.frame(table, step.features, [step.target, step.split.column])
        y = features.target_values(df, step.target, step.task, step.classes)
        holdout = features.holdout_mask(df, step.split, step.seed)
    except features.DataProblem as exc:
        raise StepFailed(f"train {step.id}: {exc}") from None
    _check_classes(ctx, step, y[~holdout])
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

    reg = ctx.model_registry
    champ = reg.champion(step.model)  # taken before this version exists: the one the challenger is up against
    key = run_key(ctx, step.id)
    tags = {"dagspec.dag_id": ctx.pipeline.dag_id, "dagspec.step": step.id, "dagspec.run_key": key,
            "dagspec.window": f"{window.start.isoformat()}/{window.end.isoformat()}",
            "dagspec.features": json.dumps([f.model_dump() for f in step.features]),
            "dagspec.target": step.target, "dagspec.task": step.task}
    if step.task == "classification":  # "null" for a 0/1 model: the monitor then need not load it to tell
        tags[CLASSES_TAG] = json.dumps(features.classes_of(model))
    run_id = reg.start_run(step.model, tags, run_name=f"{ctx.pipeline.dag_id}.{step.id} {window.end:%Y-%m-%d}")
    try:
        with tempfile.TemporaryDirectory(prefix="dagspec-train-") as tmp:
            folder = Path(tmp)
            # An MLflow model directory (scikit-learn flavor, skops, signature, a few training rows as its example).
            numeric = {f.column for f in step.features if f.type == "numeric"}
            save_model_dir(model, folder / MODEL_DIR, X[~holdout].head(5), numeric, step.task)
            (folder / "data").mkdir()
            pq.write_table(table.filter(pa.array(holdout)), folder / "data" / "holdout.parquet", compression="zstd")
            (folder / "reference").mkdir()
            reference = drift.profile(df[~holdout], step.features, step.seed)
            (folder / "reference" / "reference.json").write_text(json.dumps(reference))
            # The monitor step's prediction-drift reference: this version's holdout predictions, binned.
            predicted = (metrics.scored_probability(model, X[holdout]) if step.task == "classification"
                         else model.predict(X[holdout]))
            (folder / "reference" / "predictions.json").write_text(json.dumps(drift.prediction_profile(predicted)))
            reg.log_model_dir(run_id, folder / MODEL_DIR)
            for sub in ("data", "reference"):
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
    ctx.log.info("training report: %s", ctx.report_link(html))
    return json_safe({"model": step.model, "version": version, "run_id": run_id, "rows_train": int((~holdout).sum()),
                      "rows_holdout": int(holdout.sum()), "metrics": scores, "report": str(html),
                      "report_url": ctx.report_link(html)})


def _check_classes(ctx: RunContext, step: TrainStep, y: Any) -> None:
    """Before fitting: every declared class is in the training rows, and the promote steps deciding on this model
    use metrics that exist for its kind of target (known only now when the classes are not declared)."""
    if step.task != "classification":
        return
    import numpy as np

    seen = set(np.unique(y).tolist())
    if step.classes is not None and (absent := [c for c in step.classes if c not in seen]):
        raise StepFailed(f"train {step.id}: declared class(es) {', '.join(map(repr, absent[:10]))} of {step.target!r} "
                         "are not in the training rows; widen data.days or remove them from 'classes'")
    problems = metric_problems(ctx.pipeline, step, multiclass=step.classes is not None or len(seen) > 2)
    if problems:
        raise StepFailed(f"train {step.id}: target {step.target!r} has {len(seen)} class(es) in the training rows; "
                         + "; ".join(f"{'.'.join(map(str, loc))}: {msg} ({fix})" for loc, msg, fix in problems))
