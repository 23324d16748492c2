"""Monitor: each scored batch's prediction drift, row volume, feature nulls and ranges, and (once labels arrive)
the realised metrics of the version that made the predictions, recorded per batch_date and plotted over time.

A record is a JSON file named by its batch_date, so a re-run replaces it. A breach warns, fails the task, or
(on_breach retrain) asks for a retrain the way a drift step does; each breach alerts through the definition's
channels with its numbers.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from dagspec.alerts import AlertEvent, send_alerts
from dagspec.errors import AlreadyAlerted, StepFailed
from dagspec.ml import data as ml_data
from dagspec.ml import monitor
from dagspec.ml.monitor_report import monitor_png
from dagspec.ml.report import MONITOR_PNG, with_monitor
from dagspec.spec.ml_steps import ScoreStep
from dagspec.spec.monitor_step import MonitorStep
from dagspec.stages.context import RunContext
from dagspec.stages.ml import canary
from dagspec.stages.ml.common import json_safe, report_dir, write_record
from dagspec.stages.ml.monitor_inputs import References, first_rows, scored
from dagspec.stages.ml.monitor_labels import metric_checked, realised
from dagspec.windows import Batch, Window

SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}")  # a dag_id or step id, as a folder name


def run_monitor(ctx: RunContext, step: MonitorStep) -> dict[str, Any]:
    score = ctx.pipeline.step(step.input)
    if not isinstance(score, ScoreStep):  # the reference rules say so; a hand-built Pipeline may not
        raise StepFailed(f"monitor {step.id}: input {step.input!r} is not a score step")
    folder = report_dir(ctx, step.id)
    records = folder / "records"
    records.mkdir(exist_ok=True)
    history = read_records(records)
    refs = References(ctx.model_registry, step.model)
    done: dict[str, dict[str, Any]] = {}
    with ctx.warehouse.session() as session:
        for batch in ctx.batches:
            record = measure(ctx, session, step, score, batch, refs, history)
            history[batch.batch_date] = record
            write_record(records / f"{batch.batch_date.isoformat()}.json", record)
            track(ctx, refs, record)
            done[batch.batch_date.isoformat()] = record
        rollout = canary.check(ctx, session, step, score)  # a staged canary: promote, roll back or wait
    plot = monitor_png(folder / "monitor.png", [history[d] for d in sorted(history)],
                       step.labels.metric if step.labels else None)
    version_report(ctx, step, refs, history)
    reasons = [f"{day}: {r}" for day, rec in done.items() for r in rec["reasons"]]
    breached = bool(reasons)
    w = ctx.window
    result = {"model": step.model, "window": [w.start.isoformat(), w.end.isoformat()], "on_breach": step.on_breach,
              "breached": breached, "retrain_requested": breached and step.on_breach == "retrain",
              "reasons": reasons, "batches": done, "records": str(records), "plot": str(plot) if plot else None,
              "canary": rollout}
    summary = "; ".join(reasons) or "every number within its threshold"
    ctx.log.info("monitor %s: %s over %d batch(es): %s -> %s", step.id, step.model, len(done),
                 "BREACH" if breached else "healthy", summary)
    if plot:
        ctx.log.info("monitor plot: %s", ctx.report_link(plot))
    if breached:
        alerted = alert(ctx, step, reasons, plot)
        if step.on_breach == "fail":
            raise (AlreadyAlerted if alerted else StepFailed)(f"monitor {step.id}: {summary}")
        if step.on_breach == "retrain":
            ctx.log.info("monitor %s: retraining of %s requested (%s)", step.id, step.model, summary)
        else:
            ctx.log.warning("monitor %s: %s", step.id, summary)
    return json_safe(result)


def measure(ctx: RunContext, session: Any, step: MonitorStep, score: ScoreStep, batch: Batch, refs: References,
            history: dict[date, dict[str, Any]]) -> dict[str, Any]:
    """The record of one batch: its numbers, the version that scored it, and its breaches."""
    record: dict[str, Any] = {"batch_date": batch.batch_date.isoformat(), "model": step.model}
    reader = scored(ctx, session, score, batch.batch_date, ["probability", "prediction", "model_version"],
                    step.chunk_rows)
    first, reader = first_rows(reader) if reader is not None else (None, None)
    recent = [h["volume"]["rows"] for d, h in sorted(history.items()) if d < batch.batch_date][-step.volume_batches:]
    if first is None:  # nothing scored that day: only the volume can be judged
        record.update(model_version=None, volume=monitor.volume(0, recent), prediction=None, features={})
    else:
        # The version that scored most of the batch's first rows: with a canary, a batch holds two.
        version = str(pc.mode(first.column("model_version"))[0]["mode"].as_py())
        bins, profile, task = refs.of(version)
        column = "probability" if task == "classification" else "prediction"
        predictions = monitor.PredictionStats(bins)
        for chunk in reader:
            predictions.add(chunk.column(column))
        feats = monitor.FeatureStats(profile)
        inputs = ml_data.read(ctx, session, score.data, Window(batch.from_at, batch.to_at), list(profile),
                              step.chunk_rows)
        for chunk in inputs:
            feats.add(chunk)
        record.update(model_version=version, prediction=predictions.summary(),
                      volume=monitor.volume(predictions.rows, recent), features=feats.summary())
        if step.labels is not None:
            metric_checked(ctx, step, task, refs.classes(version) if task == "classification" else None)
            record["realised"] = realised(ctx, session, step.labels, score, batch, refs, version, step.chunk_rows)
    labels = step.labels
    record["reasons"] = monitor.breaches(record, step.thresholds, labels.metric if labels else None,
                                         labels.threshold if labels else None)
    return json_safe(record)


def track(ctx: RunContext, refs: References, record: dict[str, Any]) -> None:
    """The record's numbers on the MLflow run of the version they measure, one point per batch date (step: its
    ordinal), so the run's charts plot them over time. The timestamp is the date's midnight, not the clock's: a
    re-run of a date that measures the same numbers logs the same point, which MLflow keeps once."""
    for version, day, numbers in monitor.tracked(record):
        when = date.fromisoformat(day)
        midnight = datetime(when.year, when.month, when.day, tzinfo=UTC)
        ctx.model_registry.log(refs.version(version).run_id, metrics=numbers, step=when.toordinal(),
                               timestamp_ms=int(midnight.timestamp() * 1000))


def version_report(ctx: RunContext, step: MonitorStep, refs: References, history: dict[date, dict[str, Any]]) -> None:
    """The newest batch's version's own monitoring history, drawn into its training report (the folder train
    wrote it to, and the copy on its MLflow run). Only what that version scored and the realised metrics of its
    own predictions: the report is about the version, the monitor's plot about the pipeline."""
    version = history[max(history)].get("model_version") if history else None
    if version is None:
        return
    run = ctx.model_registry.client.get_run(refs.version(version).run_id)
    parts = [run.data.tags.get("dagspec.dag_id", ""), run.data.tags.get("dagspec.step", "")]
    if not all(SAFE_PART.fullmatch(p) for p in parts):  # registry tags name a folder: never a path out of reports
        ctx.log.warning("monitor %s: v%s's training run names no report folder (%s)", step.id, version, parts)
        return
    folder = ctx.reports_root.joinpath(*parts, f"version_{version}")
    page = folder / "report.html"
    if not page.exists():  # trained with another data home: its report is not here to draw into
        return
    own = [{**r, "realised": r.get("realised") if (r.get("realised") or {}).get("model_version") == version else None}
           for d, r in sorted(history.items()) if r.get("model_version") == version]
    png = monitor_png(folder / MONITOR_PNG, own, step.labels.metric if step.labels else None)
    if png is None:
        return
    page.write_text(with_monitor(page.read_text()))
    try:
        for path in (png, page):
            ctx.model_registry.client.log_artifact(run.info.run_id, str(path), "report")
    except Exception as exc:  # the registry's copy is a convenience, as at train time
        ctx.log.warning("monitor %s: could not copy v%s's monitoring plot to the registry: %s", step.id, version, exc)


def read_records(folder: Path) -> dict[date, dict[str, Any]]:
    """The recorded batches, by batch_date (one file each: a re-run replaced its own)."""
    found = {}
    for path in folder.glob("*.json"):
        try:
            found[date.fromisoformat(path.stem)] = json.loads(path.read_text())
        except (ValueError, OSError):  # a stray file is not a record
            continue
    return found


def alert(ctx: RunContext, step: MonitorStep, reasons: list[str], plot: Path | None) -> bool:
    """Whether any channel took the alert."""
    alerts = ctx.pipeline.alerts
    if alerts is None or "monitor" not in alerts.on:
        return False
    w = ctx.window
    event = AlertEvent(kind="monitor", dag_id=ctx.pipeline.dag_id, task_id=step.id, run_id=f"on_breach={step.on_breach}",
                       date=f"{w.start:%Y-%m-%d} .. {w.end:%Y-%m-%d}", try_number=1, max_tries=0,
                       error="\n".join(reasons), log_url=ctx.report_link(plot) if plot else "")
    delivered = send_alerts(alerts, event, ctx.resolver)
    ctx.log.info("monitor %s alert: %s", step.id,
                 ", ".join(f"{k} {'sent' if ok else 'NOT sent'}" for k, ok in delivered.items()) or "no channel")
    return any(delivered.values())
