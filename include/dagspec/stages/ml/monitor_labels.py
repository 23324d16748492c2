"""Realised performance: the predictions of batch D - delay joined with the labels that arrived since, measured
with the holdout metrics, for the version that made those predictions."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagspec.errors import StepFailed
from dagspec.ml import data as ml_data
from dagspec.ml import features, metrics, multiclass
from dagspec.spec.ml_steps import ScoreStep
from dagspec.spec.monitor_step import MonitorLabels, MonitorStep
from dagspec.spec.rollout_checks import metric_fit
from dagspec.sql import read_sql_file, render_window
from dagspec.stages.context import RunContext
from dagspec.stages.ml.monitor_inputs import References, scored
from dagspec.windows import Batch, Window

if TYPE_CHECKING:
    import pandas as pd

    from dagspec.warehouse.contract import Session


def select_only(ctx: RunContext, labels: MonitorLabels, window: Window, dialect: str) -> None:
    """Labels are read, never written: refuse SQL that is not one SELECT before it reaches the warehouse."""
    import sqlglot
    from sqlglot import exp

    data = labels.data
    if data.sql is None and data.query is None:
        return
    raw = data.query if data.query is not None else read_sql_file(ctx.sql_root, data.sql)
    text = render_window(raw, window.start, window.end, ctx.pipeline.params)
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except Exception as exc:  # sqlglot raises ParseError, TokenError and, on odd input, others
        raise StepFailed(f"labels ({data.sql_label}): the SQL does not parse: {str(exc).splitlines()[0][:200]}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        kind = type(statements[0]).__name__.upper() if len(statements) == 1 else f"{len(statements)} statements"
        raise StepFailed(f"labels ({data.sql_label}) must be one SELECT, not {kind}: "
                         "labels.data.query reads the labels, it never changes data")


def labelled(ctx: RunContext, session: Session, labels: MonitorLabels, score: ScoreStep, day: date, window: Window,
             predicted: str, chunk_rows: int) -> pa.Table | None:
    """Batch `day`'s predictions (keys, `predicted`, model_version) joined with the labels read for its `window`;
    None when that day was not scored."""
    missing = [k for k in labels.keys if k not in score.keys]
    if missing:
        raise StepFailed(f"labels.keys {', '.join(missing)} are not keys of score step {score.id!r} "
                         f"({', '.join(score.keys)}): predictions carry only those")
    reader = scored(ctx, session, score, day, [*labels.keys, predicted, "model_version"], chunk_rows)
    if reader is None:
        return None
    predictions = reader.read_all()  # one labelled batch, a handful of columns
    select_only(ctx, labels, window, session.dialect)
    truth = ml_data.read_all(ctx, session, labels.data, window, [*labels.keys, labels.label])
    truth = truth.cast(pa.schema([predictions.schema.field(k) for k in labels.keys] + [truth.schema.field(labels.label)]))
    return predictions.join(truth, labels.keys, join_type="inner")


def predicted_column(task: str, classes: list | None) -> str:
    """The score column realised metrics are measured on: a 0/1 model's probability of 1, a multi-class model's
    most probable class (the table keeps only that class's probability), a regressor's prediction."""
    return "probability" if task == "classification" and classes is None else "prediction"


def measured(df: pd.DataFrame, label: str, predicted: str, task: str, classes: list | None) -> tuple[int, dict[str, Any]]:
    """(labelled rows, realised metrics) of predictions beside their labels; rows without a label do not count."""
    df = df[df[label].notna()]
    if df.empty:
        return 0, {}
    try:
        if classes is not None:
            # Read as they come, not checked against the classes: a label the model never saw is a wrong
            # prediction to count (and a sign of decay), not a reason to stop measuring.
            y = features.multiclass_labels(df[label], label, None)
        else:
            y = features.target_values(df, label, task)
    except features.DataProblem as exc:
        raise StepFailed(f"labels: {exc}") from None
    if classes is not None:
        scores: dict[str, Any] = multiclass.label_scores(y, df[predicted].to_numpy(dtype=object), classes)
        known = {str(c) for c in classes}
        scores["unknown_labels"] = float(sum(str(v) not in known for v in y.tolist()))
        return len(y), scores
    values = np.asarray(df[predicted], dtype=float)
    return len(y), metrics.classification(y, values) if task == "classification" else metrics.regression(y, values)


def metric_checked(ctx: RunContext, step: MonitorStep, task: str, classes: list | None) -> None:
    """The labels' metric against the version's kind of target, known for sure only now (a definition need not
    declare its classes, and the model may be trained by another definition)."""
    assert step.labels is not None
    fix = metric_fit(step.labels.metric, task, classes is not None if task == "classification" else None)
    if fix is not None:
        kind = ("a multi-class" if classes is not None else "a 0/1") if task == "classification" else "a regression"
        where = f"steps[{ctx.pipeline.steps.index(step)}].labels.metric"
        raise StepFailed(f"monitor {step.id}: {where}: the realised {step.labels.metric} is not measured for "
                         f"{kind} model ({step.model!r}); {fix}")


def realised(ctx: RunContext, session: Session, labels: MonitorLabels, score: ScoreStep, batch: Batch,
             refs: References, current: str, chunk_rows: int) -> dict[str, Any]:
    """The realised metrics of the labelled batch (`delay_days` before `batch`), or why there are none. `current`:
    the version that scored `batch` (the score table's columns are of its kind)."""
    task = refs.of(current)[2]
    shift = timedelta(days=labels.delay_days)
    day = batch.batch_date - shift
    window = Window(batch.from_at - shift, batch.to_at - shift)
    out: dict[str, Any] = {"batch_date": day.isoformat(), "delay_days": labels.delay_days, "rows": 0,
                           "model_version": None, "metrics": {}}
    predicted = predicted_column(task, refs.classes(current) if task == "classification" else None)
    joined = labelled(ctx, session, labels, score, day, window, predicted, chunk_rows)
    if joined is None:
        out["note"] = f"batch {day} was not scored"
        return out
    versions = sorted({v for v in joined.column("model_version").to_pylist() if v is not None})
    out.update(rows=joined.num_rows, versions=[str(v) for v in versions])
    if not joined.num_rows:
        out["note"] = "no labels joined the predictions yet"
        return out
    # A batch is scored by one version, or by the champion and a canary (a share of it): the main one here; the
    # canary module compares the two.
    counts = pc.value_counts(joined.column("model_version")).to_pylist()
    version = max((c for c in counts if c["values"] is not None), key=lambda c: (c["counts"], c["values"]))["values"]
    rows = joined.filter(pc.equal(joined.column("model_version"), version))
    # The classes of the version that made the predictions: a retrained model may know a class more.
    classes = refs.classes(str(version)) if predicted == "prediction" and task == "classification" else None
    n, scores = measured(rows.select([labels.label, predicted]).to_pandas(), labels.label, predicted, task, classes)
    out.update(rows=n, model_version=str(version), metrics=scores)
    return out


__all__ = ["labelled", "measured", "metric_checked", "predicted_column", "realised", "select_only"]
