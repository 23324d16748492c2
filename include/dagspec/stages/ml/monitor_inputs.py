"""What the monitor step reads: a score step's batch (from its export in the store, else its warehouse table),
and the reference a registered version is monitored against (its prediction bins and feature profile)."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.errors import StepFailed
from dagspec.ml import drift, features, metrics
from dagspec.spec.ml_steps import ScoreStep
from dagspec.sql import qualified, quote, to_dialect
from dagspec.stages.context import RunContext
from dagspec.stages.ml.common import champion_features, version_classes

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow.dataset as pads

    from dagspec.ml.registry import Registry
    from dagspec.warehouse.contract import Session


def scored(ctx: RunContext, session: Session, score: ScoreStep, day: date, columns: list[str],
           chunk_rows: int) -> pa.RecordBatchReader | None:
    """The score step's predictions for `day` (only `columns`), streamed; None when that day was not scored."""
    if score.output.export is not None:
        out = score.output.export
        if day not in ctx.store.batch_dates(out.schema_, out.table):
            return None
        dataset = ctx.store.dataset(out.schema_, out.table, [day])
        wanted = [c for c in columns if c in dataset.schema.names]
        schema = pa.schema([dataset.schema.field(c) for c in wanted])
        return pa.RecordBatchReader.from_batches(schema, _row_groups(dataset, wanted, chunk_rows))
    table = score.output.table
    assert table is not None  # ScoreOutput holds a table or an export
    have = session.table_columns(table.schema_, table.table)
    if have is None:
        return None
    names = {c for c, _ in have}
    d = session.dialect
    select = ", ".join(quote(c, d) for c in columns if c in names)
    sql, _ = to_dialect(f"SELECT {select} FROM {qualified(table.schema_, table.table, d)} WHERE batch_date = :day",
                        read=d, write=d)  # :day becomes the warehouse's own bind mark
    return session.arrow(sql, {"day": day}, chunk_rows)


def _row_groups(dataset: pads.Dataset, columns: list[str], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    # One row group at a time, on this thread. Arrow's scanner (even without read-ahead) and
    # ParquetFile.iter_batches both grew the process by ~10 MB per million rows read; this stays flat.
    for fragment in dataset.get_fragments():
        for group in fragment.split_by_row_group():
            yield from group.to_batches(columns=columns, batch_size=chunk_rows, use_threads=False)


def first_rows(reader: pa.RecordBatchReader) -> tuple[pa.RecordBatch | None, pa.RecordBatchReader]:
    """The first non-empty chunk of a stream, and the stream (that chunk first): the version that made a
    batch's predictions is read off its first row before the reference to bin against is known."""
    for chunk in reader:
        if chunk.num_rows:
            rest = pa.RecordBatchReader.from_batches(reader.schema, _chain(chunk, reader))
            return chunk, rest
    return None, reader


def _chain(first: pa.RecordBatch, reader: pa.RecordBatchReader):
    yield first
    yield from reader


class References:
    """The monitoring reference of each version seen in a run, fetched from the registry once per version."""

    def __init__(self, reg: Registry, model: str) -> None:
        self.reg = reg
        self.model = model
        self.cache: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {}
        self.labels: dict[str, list | None] = {}
        self.versions: dict[str, Any] = {}

    def version(self, version: str) -> Any:
        """The registry's ModelVersion `version` of the model."""
        if version not in self.versions:
            try:
                self.versions[version] = self.reg.version(self.model, version)
            except Exception as exc:  # MLflow raises its own RestException for an unknown version
                raise StepFailed(f"model {self.model!r} has no version {version} in the registry "
                                 f"(the scores name it): {exc}") from None
        return self.versions[version]

    def classes(self, version: str) -> list | None:
        """`version`'s classes when it is a multi-class model, else None."""
        if version not in self.labels:
            self.labels[version] = version_classes(self.reg, self.version(version))
        return self.labels[version]

    def of(self, version: str) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(prediction bins, feature profile, task) of `version`."""
        if version not in self.cache:
            mv = self.version(version)
            feature_profile = self.reg.read_json(mv.run_id, "reference/reference.json")
            feats, target, task = champion_features(self.reg, mv)
            try:
                predictions = self.reg.read_json(mv.run_id, "reference/predictions.json")
            except Exception:  # registered before train stored its prediction bins: bin its holdout now
                predictions = self.from_holdout(mv.run_id, feats, task)
            self.cache[version] = (predictions, feature_profile, task)
        return self.cache[version]

    def from_holdout(self, run_id: str, feats: list, task: str) -> dict[str, Any]:
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="dagspec-monitor-") as tmp:
            holdout = pq.read_table(self.reg.download(run_id, "data/holdout.parquet", Path(tmp)))
        X = features.frame(holdout, feats)[[f.column for f in feats]]
        model = self.reg.load(run_id)
        predicted = metrics.scored_probability(model, X) if task == "classification" else model.predict(X)
        return drift.prediction_profile(predicted)


__all__ = ["References", "first_rows", "scored"]
