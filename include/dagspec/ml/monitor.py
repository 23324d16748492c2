"""The numbers of a monitored batch, taken chunk by chunk (memory stays flat however big the batch), and the
rules that turn them into breaches. Pure: Arrow batches and reference profiles in, plain dicts out."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dagspec.ml.drift import bin_counts, psi
from dagspec.spec.ml_steps import LOWER_IS_BETTER
from dagspec.spec.monitor_step import MonitorThresholds


class PredictionStats:
    """Bin counts of a batch's predictions over the reference's bins, summed chunk by chunk."""

    def __init__(self, reference: dict[str, Any]) -> None:
        self.edges = np.asarray(reference["edges"], dtype=float)
        self.reference = np.asarray(reference["shares"], dtype=float)
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.rows = 0

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        x = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
        x = x[~np.isnan(x)]
        self.counts += bin_counts(x, self.edges)
        self.rows += len(x)

    def summary(self) -> dict[str, Any]:
        shares = self.counts / max(self.rows, 1)
        return {"rows": self.rows, "psi": psi(self.reference, shares) if self.rows else None,
                "shares": shares.tolist(), "reference_shares": self.reference.tolist()}


class FeatureStats:
    """Per feature: rows, nulls, min, max and (numeric) values outside the training min..max."""

    def __init__(self, reference: dict[str, Any]) -> None:
        self.reference = reference
        self.stats: dict[str, dict[str, Any]] = {c: {"rows": 0, "nulls": 0, "min": None, "max": None, "out_of_range": 0}
                                                 for c in reference}

    def add(self, batch: pa.RecordBatch) -> None:
        for column, ref in self.reference.items():
            if column not in batch.schema.names:
                continue
            values, s = batch.column(column), self.stats[column]
            s["rows"] += len(values)
            s["nulls"] += values.null_count
            if ref["type"] != "numeric" or values.null_count == len(values):
                continue
            x = pc.cast(values, pa.float64())
            low, high = pc.min_max(x).values()
            s["min"] = low.as_py() if s["min"] is None else min(s["min"], low.as_py())
            s["max"] = high.as_py() if s["max"] is None else max(s["max"], high.as_py())
            lo, hi = reference_range(ref)
            if lo is not None and hi is not None:
                s["out_of_range"] += pc.sum(pc.or_(pc.less(x, lo), pc.greater(x, hi))).as_py() or 0

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for column, s in self.stats.items():
            ref = self.reference[column]
            lo, hi = reference_range(ref) if ref["type"] == "numeric" else (None, None)
            non_null = s["rows"] - s["nulls"]
            nulls = {"rows": s["rows"], "nulls": s["nulls"], "null_share": s["nulls"] / s["rows"] if s["rows"] else None,
                     "reference_null_share": reference_null_share(ref)}
            out[column] = nulls if ref["type"] != "numeric" else {
                **nulls, "min": s["min"], "max": s["max"], "out_of_range": s["out_of_range"],
                "out_of_range_share": s["out_of_range"] / non_null if non_null else None,
                "reference_min": lo, "reference_max": hi}
        return out


def reference_range(ref: dict[str, Any]) -> tuple[float | None, float | None]:
    """A numeric feature's training min..max; profiles made before they were recorded have the ends of their
    sorted sample (a little narrower than the data, never wider)."""
    if "min" in ref:
        return ref["min"], ref["max"]
    sample = ref.get("sample") or []
    return (sample[0], sample[-1]) if sample else (None, None)


def reference_null_share(ref: dict[str, Any]) -> float:
    if ref["type"] == "numeric":
        return float(ref.get("missing", 0.0))
    return float(ref["shares"].get("__missing__", 0.0))


def volume(rows: int, history: list[int]) -> dict[str, Any]:
    """This batch's rows against the median of the recent batches' recorded rows."""
    if not history:
        return {"rows": rows, "median": None, "mean": None, "change": None, "history": 0}
    median = float(statistics.median(history))
    change = (rows - median) / median if median else (math.inf if rows else 0.0)
    return {"rows": rows, "median": median, "mean": float(statistics.fmean(history)), "change": change,
            "history": len(history)}


def realised_worse(metric: str, value: float | None, threshold: float) -> bool:
    if value is None or math.isnan(value):
        return False
    return value > threshold if metric in LOWER_IS_BETTER else value < threshold


def breaches(record: dict[str, Any], limits: MonitorThresholds, metric: str | None = None,
             threshold: float | None = None) -> list[str]:
    """The reasons a batch's record is a breach, each with its numbers; empty when it is not."""
    reasons = []
    p = record.get("prediction") or {}
    if p.get("psi") is not None and p["psi"] > limits.prediction_psi:
        reasons.append(f"prediction PSI {p['psi']:.3f} > {limits.prediction_psi}")
    v = record.get("volume") or {}
    if v.get("change") is not None and abs(v["change"]) > limits.volume_change:
        reasons.append(f"rows {v['rows']} vs median {v['median']:g} of the last {v['history']} batch(es): "
                       f"{v['change']:+.0%} (limit ±{limits.volume_change:.0%})")
    for column, f in (record.get("features") or {}).items():
        if f.get("null_share") is not None and f["null_share"] - f["reference_null_share"] > limits.null_share:
            reasons.append(f"{column}: null share {f['null_share']:.3f} vs {f['reference_null_share']:.3f} in "
                           f"training (limit +{limits.null_share})")
        if f.get("out_of_range_share") is not None and f["out_of_range_share"] > limits.out_of_range_share:
            reasons.append(f"{column}: {f['out_of_range_share']:.3f} of values outside the training range "
                           f"{f['reference_min']:g}..{f['reference_max']:g} (seen {f['min']:g}..{f['max']:g}; "
                           f"limit {limits.out_of_range_share})")
    r = record.get("realised") or {}
    if metric is not None and threshold is not None and realised_worse(metric, r.get("metrics", {}).get(metric),
                                                                       threshold):
        reasons.append(f"realised {metric} {r['metrics'][metric]:.4f} of v{r['model_version']} on batch "
                       f"{r['batch_date']} ({r['rows']} labelled rows) is worse than {threshold}")
    return reasons


def tracked(record: dict[str, Any]) -> list[tuple[str, str, dict[str, float]]]:
    """A batch record's numbers as MLflow metrics: (version, date they belong to, {name: value}). Drift, volume and
    feature numbers belong to the batch and the version that scored it; realised ones to the labelled batch and
    the version that made those predictions. None and NaN are left out (MLflow plots only numbers)."""
    out = []
    p, v = record.get("prediction") or {}, record.get("volume") or {}
    mine = {"monitor.prediction_psi": p.get("psi"), "monitor.rows": v.get("rows"), "monitor.volume_change": v.get("change")}
    for column, f in (record.get("features") or {}).items():
        mine[f"monitor.null_share.{column}"] = f.get("null_share")
        mine[f"monitor.out_of_range_share.{column}"] = f.get("out_of_range_share")
    if record.get("model_version") is not None:
        out.append((str(record["model_version"]), record["batch_date"], _numbers(mine)))
    r = record.get("realised") or {}
    if r.get("model_version") is not None and r.get("metrics"):
        named = {f"monitor.realised.{k}": val for k, val in r["metrics"].items()}
        out.append((str(r["model_version"]), r["batch_date"], _numbers({**named, "monitor.realised.rows": r["rows"]})))
    return [(version, day, numbers) for version, day, numbers in out if numbers]


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(v)}


__all__ = ["FeatureStats", "PredictionStats", "breaches", "realised_worse", "reference_null_share", "reference_range",
           "tracked", "volume"]
