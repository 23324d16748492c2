"""Evaluate the challenger and the champion on the same holdout; promote the challenger only when it wins."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from dagspec.errors import StepFailed
from dagspec.ml import features, metrics, multiclass
from dagspec.spec.ml_steps import EvaluateStep, PromoteStep, TrainStep
from dagspec.stages.context import RunContext
from dagspec.stages.ml import canary
from dagspec.stages.ml.common import champion_features, json_safe, report_dir, run_key, write_record
from dagspec.stages.ml.training_report import champion_curve, write_report

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow.entities.model_registry import ModelVersion

    from dagspec.ml.registry import Registry


def _challenger(ctx: RunContext, train_id: str) -> tuple[TrainStep, Registry, ModelVersion]:
    train = ctx.pipeline.step(train_id)
    assert isinstance(train, TrainStep)
    reg = ctx.model_registry
    try:
        version = reg.find_version(train.model, run_key(ctx, train.id))
    except LookupError as exc:
        raise StepFailed(str(exc)) from None
    return train, reg, version


def _holdout(reg: Registry, run_id: str) -> pa.Table:
    with tempfile.TemporaryDirectory(prefix="dagspec-eval-") as tmp:
        return pq.read_table(reg.download(run_id, "data/holdout.parquet", Path(tmp)))


def run_evaluate(ctx: RunContext, step: EvaluateStep) -> dict[str, Any]:
    train, reg, version = _challenger(ctx, step.input)
    holdout = _holdout(reg, version.run_id)
    df = features.frame(holdout, train.features, [train.target])
    model = reg.load(version.run_id)
    y = features.target_values(df, train.target, train.task, features.classes_of(model))
    X = df[[f.column for f in train.features]]
    scores = metrics.evaluate(model, X, y, train.task, step.threshold)
    reg.log(version.run_id, metrics=scores)

    champ = reg.champion(train.model)
    champ_scores: dict[str, float] | None = None
    note = "no champion yet"
    if champ is not None and str(champ.version) == str(version.version):
        note = "this version is already the champion"
    elif champ is not None:
        champ_features, champ_target, champ_task = champion_features(reg, champ)
        try:
            if champ_task != train.task:  # metrics of different tasks do not compare: fail safe, as below
                raise features.DataProblem(f"it is a {champ_task} model and the challenger a {train.task} one")
            cdf = features.frame(holdout, champ_features, [champ_target])
            champ_model = reg.load(champ.run_id)
            champ_y = features.target_values(cdf, champ_target, champ_task, features.classes_of(champ_model))
            champ_scores = metrics.evaluate(champ_model, cdf[[f.column for f in champ_features]], champ_y,
                                            champ_task, step.threshold)
            note = f"champion v{champ.version} measured on the same {len(y)} holdout rows"
        except features.DataProblem as exc:
            note = f"champion v{champ.version} cannot score this holdout: {exc}"
        reg.log(version.run_id, metrics={f"champion.{k}": v for k, v in (champ_scores or {}).items()},
                tags={"dagspec.champion_version": champ.version, "dagspec.champion_note": note})
    ctx.log.info("evaluate %s: %s v%s on %d holdout rows: %s", step.id, train.model, version.version, len(y),
                 ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
    ctx.log.info("evaluate %s: %s%s", step.id, note,
                 (": " + ", ".join(f"{k}={v:.4f}" for k, v in champ_scores.items())) if champ_scores else "")
    return json_safe({"model": train.model, "version": str(version.version), "rows": len(y), "challenger": scores,
                      "champion": champ_scores, "champion_version": str(champ.version) if champ else None,
                      "note": note, **per_class(model, X, y)})


def per_class(model: Any, X: Any, y: Any) -> dict[str, Any]:
    """A multi-class model's per-class precision/recall and confusion matrix ({} for any other model)."""
    classes = features.classes_of(model)
    return {} if classes is None else {"per_class": multiclass.per_class(y, model.predict_proba(X), classes)}


def run_promote(ctx: RunContext, step: PromoteStep) -> dict[str, Any]:
    evaluate = ctx.pipeline.step(step.input)
    assert isinstance(evaluate, EvaluateStep)
    train, reg, version = _challenger(ctx, evaluate.input)
    data = reg.client.get_run(version.run_id).data
    challenger = {k: v for k, v in data.metrics.items() if "." not in k}
    champ = reg.champion(train.model)
    if champ is not None and str(champ.version) == str(version.version):
        decision = metrics.Decision(True, [f"v{version.version} is already the champion (re-run)"], step.primary,
                                    challenger, None, str(champ.version))
    elif champ is not None and data.tags.get("dagspec.champion_version") != str(champ.version):
        raise StepFailed(f"the champion is now v{champ.version}, but {evaluate.id!r} measured against "
                         f"v{data.tags.get('dagspec.champion_version')}: re-run {evaluate.id!r} first")
    else:
        champion = {k.split(".", 1)[1]: v for k, v in data.metrics.items() if k.startswith("champion.")} if champ else None
        if champ is not None and not champion:
            # The champion could not be measured on this holdout: every comparison with it fails safe
            # (metrics.decide never promotes on a NaN), and the decision says why.
            champion = {}
        decision = metrics.decide(step, challenger, champion, str(champ.version) if champ else None,
                                  data.tags.get("dagspec.champion_note") if champ else None)
    label = "promoted" if decision.promoted else "rejected"
    new = decision.promoted and (champ is None or str(champ.version) != str(version.version))
    if new and step.rollout is not None and champ is not None:  # staged: the labels decide later
        label, why = canary.stage(ctx, step.rollout, reg, train.model, version)
        decision.reasons.append(why)
    elif new:
        reg.set_champion(train.model, version.version)
    reg.tag_version(train.model, version.version, {"dagspec.decision": label, "dagspec.decided_at": canary.now(),
                                                   "dagspec.reasons": " | ".join(decision.reasons)})
    record = {"model": train.model, "version": str(version.version), "run_id": version.run_id, "outcome": label,
              "window": [ctx.window.start.isoformat(), ctx.window.end.isoformat()], **decision.as_dict()}
    path = write_record(report_dir(ctx, step.id) / f"{train.model}_v{version.version}.json", record)
    shown = {"promoted": "PROMOTED to champion", "canary": "STAGED as canary"}.get(label, label)
    ctx.log.info("promote %s: %s v%s %s\n  %s", step.id, train.model, version.version,
                 shown if decision.promoted else "not promoted; champion unchanged"
                 + (f" (v{champ.version})" if champ else ""), "\n  ".join(decision.reasons))
    ctx.log.info("decision record: %s", path)
    _update_report(ctx, train, reg, version, challenger, decision, champ, evaluate.threshold, label)
    return json_safe({**record, "record": str(path)})


def _update_report(ctx: RunContext, train: TrainStep, reg: Registry, version: ModelVersion, challenger: dict[str, float],
                   decision: metrics.Decision, champ: ModelVersion | None, threshold: float, outcome: str) -> None:
    """`champ`: the champion the decision was made against (the alias may point at `version` by now)."""
    try:
        holdout = _holdout(reg, version.run_id)
        df = features.frame(holdout, train.features, [train.target])
        model = reg.load(version.run_id)
        y = features.target_values(df, train.target, train.task, features.classes_of(model))
        X = df[[f.column for f in train.features]]
        curve = champion_curve(ctx, train, reg, champ, str(version.version), holdout)
        html = write_report(ctx, train, reg, str(version.version), version.run_id, X, y, model, challenger,
                            decision.champion, curve, {**decision.as_dict(), "outcome": outcome}, threshold)
        ctx.log.info("training report (with the decision): %s", ctx.report_link(html))
    except Exception as exc:
        ctx.log.warning("could not update the training report: %s", exc)
