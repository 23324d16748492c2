"""The monitor's numbers over time as one PNG: prediction PSI, rows against their recent median, the worst
feature null share and out-of-range share, and the realised metric once labels arrive."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from dagspec.ml.report import pyplot


def monitor_png(path: Path, records: list[dict[str, Any]], metric: str | None) -> Path | None:
    """`records`: the recorded batches in batch_date order. None when there is nothing to draw."""
    if not records:
        return None
    days = [date.fromisoformat(r["batch_date"]) for r in records]
    psi = [(r.get("prediction") or {}).get("psi") for r in records]
    rows = [(r.get("volume") or {}).get("rows") for r in records]
    median = [(r.get("volume") or {}).get("median") for r in records]
    nulls = [max([f.get("null_share") or 0 for f in (r.get("features") or {}).values()], default=None) for r in records]
    ranges = [max([f.get("out_of_range_share") or 0 for f in (r.get("features") or {}).values()], default=None)
              for r in records]
    panels = 4 if metric else 3
    plt = pyplot()
    fig, axes = plt.subplots(panels, 1, figsize=(7, 2.1 * panels), dpi=100, sharex=True)
    axes[0].plot(days, _nan(psi), marker="o")
    axes[0].set_title("prediction PSI vs the champion's holdout")
    axes[1].plot(days, _nan(rows), marker="o", label="rows")
    axes[1].plot(days, _nan(median), linestyle="--", label="median of recent batches")
    axes[1].set_title("row volume")
    axes[1].legend(fontsize=7)
    axes[2].plot(days, _nan(nulls), marker="o", label="worst null share")
    axes[2].plot(days, _nan(ranges), marker="s", label="worst out-of-range share")
    axes[2].set_title("feature nulls and ranges")
    axes[2].legend(fontsize=7)
    if metric:
        realised = [r.get("realised") or {} for r in records]
        axes[3].plot([date.fromisoformat(x["batch_date"]) for x in realised if x.get("metrics", {}).get(metric) is not None],
                     [x["metrics"][metric] for x in realised if x.get("metrics", {}).get(metric) is not None],
                     marker="o", color="#2e7d32")
        axes[3].set_title(f"realised {metric} (by scored batch)")
    for ax in axes:
        ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _nan(values: list[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]
