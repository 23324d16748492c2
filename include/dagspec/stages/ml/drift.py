"""Drift: PSI (and KS for numeric features) of recent data against the champion's training reference.

The verdict and its reasons are recorded; past a threshold the result asks for a retrain (in
Airflow the DAG layer turns that into an Asset event the training pipelines are scheduled on).
"""

from __future__ import annotations

from typing import Any

from dagspec.ml import data as ml_data
from dagspec.ml import drift, features
from dagspec.spec.ml_steps import DriftStep, Feature
from dagspec.stages.context import RunContext
from dagspec.stages.ml.common import json_safe, report_dir, write_record


def run_drift(ctx: RunContext, step: DriftStep) -> dict[str, Any]:
    window = ml_data.lookback(ctx.window, step.data.days)
    reg = ctx.model_registry
    champ = reg.champion(step.model)
    result: dict[str, Any] = {"model": step.model, "window": [window.start.isoformat(), window.end.isoformat()],
                              "retrain": step.retrain, "psi_threshold": step.psi_threshold,
                              "ks_threshold": step.ks_threshold}
    if champ is None:
        result.update(drifted=True, champion_version=None, rows=0, features={},
                      reasons=[f"model {step.model!r} has no champion yet"])
    else:
        reference = reg.read_json(champ.run_id, "reference/reference.json")
        feats = [Feature(column=c, type=r["type"]) for c, r in reference.items()]
        with ctx.warehouse.session() as session:
            table = ml_data.read_all(ctx, session, step.data, window, [f.column for f in feats])
        stats = drift.compare(reference, features.frame(table, feats))
        reasons = []
        for column, s in stats.items():
            if s.get("psi") is not None and s["psi"] > step.psi_threshold:
                reasons.append(f"{column}: PSI {s['psi']:.3f} > {step.psi_threshold}")
            if step.ks_threshold is not None and s.get("ks", 0) > step.ks_threshold:
                reasons.append(f"{column}: KS {s['ks']:.3f} > {step.ks_threshold} (p={s['ks_pvalue']:.2g})")
        if table.num_rows == 0:
            reasons = []
        result.update(drifted=bool(reasons), champion_version=str(champ.version), rows=table.num_rows,
                      features=stats, reasons=reasons)
    record = write_record(report_dir(ctx, step.id) / f"{window.end:%Y-%m-%dT%H%M%S}.json", result)
    result["record"] = str(record)
    summary = "; ".join(result["reasons"]) or "no feature past its threshold"
    ctx.log.info("drift %s: %s v%s over %d row(s): %s -> %s", step.id, step.model, result["champion_version"],
                 result["rows"], "DRIFTED" if result["drifted"] else "stable", summary)
    if result["drifted"] and step.retrain:
        ctx.log.info("drift %s: retraining of %s requested (%s)", step.id, step.model, summary)
    ctx.log.info("drift record: %s", record)
    return json_safe(result)
