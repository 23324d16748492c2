"""Drift: a reference profile of the training data, and PSI / KS of recent data against it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from dagspec.spec.ml_steps import Feature

BINS = 10
SAMPLE = 5_000  # training values kept per numeric feature for the KS test
EPS = 1e-4  # floor for empty bins: PSI is infinite otherwise


def profile(df: pd.DataFrame, features: list[Feature], seed: int) -> dict[str, Any]:
    """What drift is measured against: quantile bins + shares (numeric), category shares (categorical)."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for f in features:
        values = df[f.column]
        if f.type == "numeric":
            x = values.to_numpy(dtype=float)
            x = x[~np.isnan(x)]
            edges = np.unique(np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1])) if len(x) else np.array([])
            sample = rng.choice(x, size=min(SAMPLE, len(x)), replace=False) if len(x) else x
            out[f.column] = {"type": "numeric", "edges": edges.tolist(), "shares": _numeric_shares(x, edges).tolist(),
                             "missing": float(values.isna().mean()), "sample": np.sort(sample).tolist(),
                             "min": float(x.min()) if len(x) else None, "max": float(x.max()) if len(x) else None}
        else:
            shares = values.fillna("__missing__").astype(str).value_counts(normalize=True)
            out[f.column] = {"type": "categorical", "shares": {str(k): float(v) for k, v in shares.items()}}
    return out


def prediction_profile(values: np.ndarray) -> dict[str, Any]:
    """What prediction drift is measured against: quantile bins and shares of a version's holdout predictions."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    edges = np.unique(np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1])) if len(x) else np.array([])
    return {"edges": edges.tolist(), "shares": _numeric_shares(x, edges).tolist(), "rows": int(len(x)),
            "min": float(x.min()) if len(x) else None, "max": float(x.max()) if len(x) else None}


def bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of `x` (no NaN) in the bins `edges` cut, the way the reference shares were taken: summed over
    chunks, they give a batch's shares without holding the batch."""
    return np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)


def _numeric_shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
    return counts / max(len(x), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(np.asarray(expected, dtype=float), EPS, None)
    a = np.clip(np.asarray(actual, dtype=float), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def compare(reference: dict[str, Any], df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per feature: psi (and ks + ks_pvalue for numeric ones) of `df` against the reference."""
    from scipy.stats import ks_2samp

    result: dict[str, dict[str, float]] = {}
    for column, ref in reference.items():
        if column not in df.columns:
            continue
        if ref["type"] == "numeric":
            x = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=float)
            x = x[~np.isnan(x)]
            edges = np.asarray(ref["edges"], dtype=float)
            stats = {"psi": psi(ref["shares"], _numeric_shares(x, edges)) if len(x) else math.nan}
            if len(x) and ref["sample"]:
                ks = ks_2samp(np.asarray(ref["sample"]), x)
                stats.update(ks=float(ks.statistic), ks_pvalue=float(ks.pvalue))
        else:
            seen = df[column].fillna("__missing__").astype(str).value_counts(normalize=True)
            cats = sorted(set(ref["shares"]) | set(seen.index))
            stats = {"psi": psi([ref["shares"].get(c, 0.0) for c in cats], [float(seen.get(c, 0.0)) for c in cats])
                     if len(df) else math.nan}
        result[column] = stats
    return result
