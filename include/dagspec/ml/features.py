"""Arrow rows -> a frame scikit-learn can use; the preprocessing pipeline; the leak-free holdout split."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from dagspec.ml.preprocess import numeric_stages, target_encoder
from dagspec.spec.ml_steps import ESTIMATORS, Feature, Split, TrainStep

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline as SkPipeline

MISSING = "__missing__"


class DataProblem(ValueError):
    """The rows cannot train or score this model (missing columns, bad target, too few rows)."""


def frame(table: pa.Table | pa.RecordBatch, features: Iterable[Feature], extra: Iterable[str] = ()) -> pd.DataFrame:
    """Numeric features as float64, categorical ones as Python strings (None when missing), extra columns as-is."""
    features = list(features)
    names = set(table.schema.names)
    missing = [f.column for f in features if f.column not in names] + [c for c in extra if c not in names]
    if missing:
        raise DataProblem(f"column(s) not in the data: {', '.join(sorted(set(missing)))}; have: {', '.join(table.schema.names)}")
    cols: dict[str, np.ndarray] = {}
    for f in features:
        col = table.column(f.column)
        if f.type == "numeric":
            try:
                cols[f.column] = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise DataProblem(f"feature {f.column!r} is numeric in the definition but the data has "
                                  f"{col.type}: {exc}") from None
        else:
            cols[f.column] = np.asarray(pc.cast(col, pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    for c in extra:
        if c not in cols:
            cols[c] = table.column(c).to_numpy(zero_copy_only=False)
    df = pd.DataFrame({k: pd.Series(v, dtype=object if v.dtype == object else None) for k, v in cols.items()},
                      copy=False)
    return df


def target_values(df: pd.DataFrame, column: str, task: str, classes: Iterable | None = None) -> np.ndarray:
    """Regression: floats. Classification: 0/1 for a two-class target; the labels themselves (int64 or str) when
    `classes` are given (declared, or the classes of a fitted multi-class model) or more than two values occur."""
    raw = df[column]
    if task == "regression":
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        if np.isnan(values).any():
            raise DataProblem(f"target {column!r} has {int(np.isnan(values).sum())} missing/non-numeric value(s)")
        return values
    if raw.isna().any():
        raise DataProblem(f"target {column!r} has {int(raw.isna().sum())} missing value(s)")
    if classes is not None or raw.nunique() > 2:
        return multiclass_labels(raw, column, classes)
    values = raw.astype(int).to_numpy() if raw.dtype != object else np.asarray([int(bool(v)) for v in raw])
    seen = set(np.unique(values).tolist())
    if not seen <= {0, 1}:
        raise DataProblem(f"classification target {column!r} must be 0/1 or true/false; found {sorted(seen)[:5]} "
                          "(a target of more than two classes may be text or whole numbers)")
    return values


def multiclass_labels(raw: pd.Series, column: str, classes: Iterable | None) -> np.ndarray:
    if pd.api.types.is_integer_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype=np.int64)
    else:
        values = np.asarray([str(v) for v in raw], dtype=object)
    if classes is not None:
        known = {c.item() if isinstance(c, np.generic) else c for c in classes}
        if stray := sorted({v for v in values.tolist() if v not in known}, key=str):
            raise DataProblem(f"target {column!r} has value(s) outside its classes: {', '.join(map(repr, stray[:5]))}; "
                              f"classes: {', '.join(map(repr, sorted(known, key=str)[:20]))}")
    return values


def classes_of(model: SkPipeline) -> list | None:
    """A fitted multi-class model's labels (None for a 0/1 model or a regressor)."""
    from sklearn.base import is_classifier

    if not is_classifier(model) or len(model.classes_) <= 2:
        return None
    return [c.item() if isinstance(c, np.generic) else c for c in model.classes_]


def build_pipeline(step: TrainStep) -> SkPipeline:
    """Preprocessing per feature (impute, scale, one-hot) + the allow-listed estimator with its checked params."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    parts = []
    for f in step.features:
        if f.type == "numeric":
            stages = [("impute", SimpleImputer(strategy=f.impute or "median")), *numeric_stages(f.preprocess, step.seed)]
            if f.scale == "standard":
                stages.append(("scale", StandardScaler()))
            elif f.scale == "minmax":
                stages.append(("scale", MinMaxScaler()))
        else:
            strategy = f.impute or "constant"
            imputer = SimpleImputer(strategy=strategy, fill_value=MISSING if strategy == "constant" else None,
                                    missing_values=None)
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist" if f.min_frequency else "ignore",
                                    min_frequency=f.min_frequency, sparse_output=False)
            encoded = target_encoder(f.preprocess, step.seed)
            stages = [("impute", imputer), ("target_encode", encoded) if encoded else ("onehot", encoder)]
        parts.append((f.column, Pipeline(stages), [f.column]))
    pre = ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=True)
    return Pipeline([("prepare", pre), ("model", estimator(step))])


def estimator(step: TrainStep) -> BaseEstimator:
    _, path, _ = ESTIMATORS[step.estimator]
    module, cls = path.split(":")
    est = getattr(importlib.import_module(module), cls)()
    params = dict(step.params)
    if "random_state" in est.get_params() and "random_state" not in params:
        params["random_state"] = step.seed
    est.set_params(**params)
    return est


def holdout_mask(df: pd.DataFrame, split: Split, seed: int) -> np.ndarray:
    """True for holdout rows. Time: every row at or after the cut. Entity: whole entities by a seeded hash."""
    if split.column not in df.columns:
        raise DataProblem(f"split column {split.column!r} is not in the data")
    col = df[split.column]
    if split.by == "time":
        if pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=float)
        else:
            values = pd.to_datetime(col, utc=True).to_numpy(dtype="datetime64[ns]").astype("int64")
        k = min(len(values) - 1, int(len(values) * (1 - split.holdout)))
        # Rows tied with the cut all go to the holdout: no moment is on both sides.
        mask = values >= np.partition(values, k)[k]
    else:
        # pandas' hash is stable across processes and versions (Python's hash() is salted per process).
        key = f"dagspec{seed:09d}"[-16:].rjust(16, "0")
        hashed = pd.util.hash_pandas_object(col.astype(str), index=False, hash_key=key).to_numpy()
        mask = (hashed % 10_000) < int(split.holdout * 10_000)
    if mask.all() or not mask.any():
        raise DataProblem(f"the {split.by} split on {split.column!r} leaves no {'training' if mask.all() else 'holdout'} "
                          "rows; widen the data window or change the split")
    return mask


def importances(pipeline: SkPipeline, X: pd.DataFrame, y: np.ndarray, task: str, seed: int = 0) -> list[tuple[str, float]]:
    """Permutation importance of each input column on (a sample of) the holdout, largest first.

    Measured on the raw columns, so it reads the same for every estimator and every encoding.
    """
    from sklearn.inspection import permutation_importance

    if len(X) > 5_000:
        take = np.random.default_rng(seed).choice(len(X), 5_000, replace=False)
        X, y = X.iloc[take], y[take]
    if task == "classification" and len(np.unique(y)) < 2:
        return []
    scoring = "r2" if task != "classification" else "roc_auc" if classes_of(pipeline) is None else "accuracy"
    result = permutation_importance(pipeline, X, y, scoring=scoring, n_repeats=3, random_state=seed)
    return sorted(zip(X.columns, result.importances_mean.tolist()), key=lambda kv: -kv[1])
