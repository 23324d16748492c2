"""Score: the champion's predictions for each batch of the window, chunk by chunk (memory stays flat).

Predictions stream into Parquet files (the store's partition when exporting, a scratch folder
otherwise); the warehouse batch is then replaced from those files in one transaction.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from dagspec.errors import StepFailed, StepSkipped
from dagspec.ml import data as ml_data
from dagspec.ml import features
from dagspec.ml.canary import canary_rows
from dagspec.paths import data_home
from dagspec.spec.ml_steps import ScoreStep
from dagspec.sql import quote
from dagspec.stages.context import RunContext
from dagspec.stages.ml import canary
from dagspec.stages.ml.common import champion_features, json_safe
from dagspec.store import Store
from dagspec.warehouse.duckdb import DuckDBSession
from dagspec.windows import Window

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline as SkPipeline

    from dagspec.spec.ml_steps import Feature
    from dagspec.warehouse.contract import Session


def run_score(ctx: RunContext, step: ScoreStep) -> dict[str, Any]:
    reg = ctx.model_registry
    champ = reg.champion(step.model)
    if champ is None:
        raise StepSkipped(f"no champion yet: model {step.model!r} has none, so there is nothing to score with; the "
                          "pipeline that trains it promotes its first version when it meets the minimums, and the "
                          "next run scores")
    feats, target, task = champion_features(reg, champ)
    version = int(champ.version)
    scorers = [Scorer(reg.load(champ.run_id), feats, version)]
    share = 0.0
    found = canary.staged(reg, step.model)
    newest = max((b.batch_date for b in ctx.batches), default=None)
    if found is not None and newest is not None and (late := canary.expire(reg, step.model, found, newest)) is not None:
        ctx.log.warning("score %s: canary v%s of %s ROLLED_BACK: %s", step.id, found.version.version, step.model, late)
        expired, found = {"version": str(found.version.version), "decision": "rolled_back", "reason": late}, None
    else:
        expired = None
    if found is not None and str(found.version.version) != str(champ.version):
        c_feats, _, c_task = champion_features(reg, found.version)
        if c_task != task:
            raise StepFailed(f"canary v{found.version.version} of {step.model} is a {c_task} model and the champion a "
                             f"{task} one: one score table cannot hold both")
        scorers.append(Scorer(reg.load(found.version.run_id), c_feats, int(found.version.version)))
        share = found.rule.canary_share
        ctx.log.info("score %s: canary v%s scores %.1f%% of each batch (by a hash of %s), champion v%s the rest",
                     step.id, found.version.version, 100 * share, ", ".join(step.keys), version)
    columns = list(dict.fromkeys([*step.keys, *(f.column for s in scorers for f in s.feats)]))
    rows: dict[str, int] = {}
    with ctx.warehouse.session() as session:
        for batch in ctx.batches:
            reader = ml_data.read(ctx, session, step.data, Window(batch.from_at, batch.to_at), columns, step.chunk_rows)
            schema = _output_schema(reader.schema, step.keys, task, features.classes_of(scorers[0].model))
            predictions = _predict(reader, step, scorers, share, task, schema)
            scratch = None
            if step.output.export is not None:
                store, dest = ctx.store, step.output.export
            else:
                scratch = data_home() / "tmp" / f"score-{uuid.uuid4().hex[:12]}"
                store, dest = Store(scratch), step.output.table
            try:
                part = store.write_partition(dest.schema_, dest.table, batch.batch_date, schema, predictions)
                if step.output.table is not None:
                    rel = _expose_parquet(session, f"__scores_{step.id}", part.files)
                    count = session.replace_batch(step.output.table.schema_, step.output.table.table, batch.batch_date,
                                                  f"SELECT * FROM {rel}", {})
                    ctx.log.info("score %s: batch_date=%s rows=%d -> table %s", step.id, batch.batch_date, count,
                                 step.output.table.qualified)
                if step.output.export is not None:
                    ctx.log.info("score %s: batch_date=%s rows=%d -> %s", step.id, batch.batch_date, part.rows, part.path)
            finally:
                if scratch is not None:
                    shutil.rmtree(scratch, ignore_errors=True)
            rows[batch.batch_date.isoformat()] = part.rows
    ctx.log.info("score %s: %s champion v%s, %d row(s) scored", step.id, step.model, version, sum(rows.values()))
    return json_safe({"model": step.model, "version": str(version), "rows": rows,
                      "canary": {"version": str(scorers[1].version), "share": share} if share else expired})


def _expose_parquet(session: Session, name: str, files: list[str]) -> str:
    if isinstance(session, DuckDBSession):
        # DuckDB keeps every Arrow batch it scans alive until the INSERT commits (memory grows with the
        # batch); its own Parquet reader streams. A warehouse method for this would be the cleaner home.
        session.con.read_parquet(files).create_view(name, replace=True)
        return quote(name, session.dialect)
    import pyarrow.dataset as pads

    return session.expose(name, pads.dataset(files, format="parquet"))


def _output_schema(source: pa.Schema, keys: list[str], task: str, classes: list | None = None) -> pa.Schema:
    """A multi-class model (`classes`) writes its most probable class (int64 or string, as its labels are) and that
    class's probability; a 0/1 model the class at 0.5 and the probability of 1."""
    missing = [k for k in keys if k not in source.names]
    if missing:
        raise StepFailed(f"key column(s) {', '.join(missing)} are not in the data")
    fields = [source.field(k) for k in keys]
    if classes is not None:
        label = pa.int64() if all(isinstance(c, int) for c in classes) else pa.string()
        fields += [pa.field("prediction", label), pa.field("probability", pa.float64())]
    elif task == "classification":
        fields += [pa.field("prediction", pa.int8()), pa.field("probability", pa.float64())]
    else:
        fields += [pa.field("prediction", pa.float64())]
    return pa.schema(fields + [pa.field("model_version", pa.int32())])


@dataclass(frozen=True)
class Scorer:
    model: SkPipeline
    feats: list[Feature]
    version: int


def _predict(reader: pa.RecordBatchReader, step: ScoreStep, scorers: list[Scorer], share: float, task: str,
             schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The champion's predictions (scorers[0]), and with a canary (scorers[1]) its predictions for its share of
    the rows, in the chunk's row order."""
    for chunk in ml_data.chunks(reader, step.chunk_rows):
        if chunk.num_rows == 0:
            continue
        routed = canary_rows(chunk, step.keys, share) if len(scorers) > 1 else np.zeros(chunk.num_rows, dtype=bool)
        parts = []  # (the chunk's row positions, their output columns) per model
        for scorer, rows in zip(scorers, (~routed, routed), strict=False):
            where = np.flatnonzero(rows)
            if not len(where):
                continue
            try:
                X = features.frame(chunk if len(where) == chunk.num_rows else chunk.take(pa.array(where)), scorer.feats)
            except features.DataProblem as exc:
                raise StepFailed(f"score {step.id}: {exc}") from None
            parts.append((where, [*_outputs(scorer.model, X, task, schema),
                                  pa.array(np.full(len(where), scorer.version, dtype=np.int32))]))
        if len(parts) == 1:
            outputs = parts[0][1]
        else:  # back into the chunk's row order
            order = pa.array(np.argsort(np.concatenate([where for where, _ in parts]), kind="stable"))
            outputs = [pa.concat_arrays([cols[i] for _, cols in parts]).take(order) for i in range(len(parts[0][1]))]
        columns = [chunk.column(k) for k in step.keys] + outputs
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def _outputs(model: SkPipeline, X: Any, task: str, schema: pa.Schema) -> list[pa.Array]:
    from dagspec.ml.metrics import positive_proba

    if (classes := features.classes_of(model)) is not None:
        proba = model.predict_proba(X)
        top = np.argmax(proba, axis=1)
        return [pa.array(np.asarray(classes, dtype=object)[top].tolist(), type=schema.field("prediction").type),
                pa.array(proba[np.arange(len(top)), top])]
    if task == "classification":
        proba = positive_proba(model, X)
        return [pa.array((proba >= 0.5).astype(np.int8)), pa.array(proba)]
    return [pa.array(np.asarray(model.predict(X), dtype=float))]
