"""The training report: one HTML page with PNG plots (metric history, ROC or residuals, feature importance)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType


def pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # files only: workers have no display
    import matplotlib.pyplot as plt

    return plt


def history_png(path: Path, history: list[dict[str, Any]], metrics: list[str]) -> Path | None:
    """Holdout metrics of every version so far, one line per metric."""
    points = [h for h in history if any(m in h["metrics"] for m in metrics)]
    if not points:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for m in metrics:
        xs = [int(h["version"]) for h in points if m in h["metrics"]]
        ys = [h["metrics"][m] for h in points if m in h["metrics"]]
        ax.plot(xs, ys, marker="o", label=m)
    champs = [int(h["version"]) for h in points if h.get("champion")]
    for c in champs:
        ax.axvline(c, color="#2e7d32", linestyle=":", linewidth=1)
    ax.set_xlabel("model version")
    ax.set_title("holdout metrics by version (dotted: champion)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def roc_png(path: Path, y: np.ndarray, proba: np.ndarray, champion_proba: np.ndarray | None = None, *,
            label: str = "challenger", champion_label: str = "champion") -> Path | None:
    from sklearn.metrics import roc_curve

    if len(np.unique(y)) < 2:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    fpr, tpr, _ = roc_curve(y, proba)
    ax.plot(fpr, tpr, label=label)
    if champion_proba is not None:
        fpr, tpr, _ = roc_curve(y, champion_proba)
        ax.plot(fpr, tpr, label=champion_label, linestyle="--")
    ax.plot([0, 1], [0, 1], color="#999", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC on the holdout")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def residual_png(path: Path, y: np.ndarray, predicted: np.ndarray) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    take = np.random.default_rng(0).permutation(len(y))[:5000]  # enough points to see the shape
    ax.scatter(predicted[take], (y - predicted)[take], s=4, alpha=0.4)
    ax.axhline(0, color="#999", linewidth=0.8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual - predicted")
    ax.set_title("residuals on the holdout")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def importance_png(path: Path, importances: list[tuple[str, float]]) -> Path | None:
    if not importances:
        return None
    plt = pyplot()
    top = importances[:20][::-1]
    fig, ax = plt.subplots(figsize=(5, 0.35 * len(top) + 1), dpi=100)
    ax.barh([n for n, _ in top], [v for _, v in top])
    ax.set_title("permutation importance on the holdout")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


MONITOR_PNG = "monitor.png"  # a version's monitoring history, drawn by the monitor step beside its report
MONITOR_SECTION = (f'<h2>Monitoring (batches this version scored)</h2><p><img src="{MONITOR_PNG}" '
                   'alt="monitoring history"></p>\n')
_DATA_MARK = '<script type="application/json" id="dagspec-report">'


def with_monitor(text: str) -> str:
    """A report's HTML with the monitoring section (once; before its JSON data)."""
    if MONITOR_SECTION in text or _DATA_MARK not in text:
        return text
    return text.replace(_DATA_MARK, MONITOR_SECTION + _DATA_MARK, 1)


def write_html(path: Path, *, title: str, facts: dict[str, Any], metrics: dict[str, float],
               champion_metrics: dict[str, float] | None, images: list[Path], decision: dict | None = None,
               per_class: dict[str, Any] | None = None) -> Path:
    """`per_class`: a multi-class model's table (ml/multiclass.py per_class), shown in place of the 0/1 counts."""
    from dagspec.ml.multiclass import report_html

    def num(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    counts = ("tp", "fp", "tn", "fn")
    rows = "".join(
        f"<tr><td>{html.escape(m)}</td><td>{num(v)}</td><td>{num((champion_metrics or {}).get(m))}</td></tr>"
        for m, v in metrics.items() if m not in counts
    )
    confusion = ""
    if all(c in metrics for c in counts):
        threshold = html.escape(str(facts.get("threshold", 0.5)))
        cell = {c: int(metrics[c]) for c in counts}
        confusion = (f"<h2>Confusion matrix (challenger, threshold {threshold})</h2><table>"
                     "<tr><th></th><th>predicted 1</th><th>predicted 0</th></tr>"
                     f"<tr><th>actual 1</th><td>{cell['tp']} (TP)</td><td>{cell['fn']} (FN)</td></tr>"
                     f"<tr><th>actual 0</th><td>{cell['fp']} (FP)</td><td>{cell['tn']} (TN)</td></tr></table>")
    elif per_class is not None:
        confusion = report_html(per_class)
    fact_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    verdict = ""
    if decision is not None:
        word = "PROMOTED to champion" if decision["promoted"] else "not promoted (champion unchanged)"
        if decision.get("outcome", "promoted") != "promoted" and decision["promoted"]:  # staged, or decided before
            word = {"canary": "STAGED as canary (labels decide)"}.get(decision["outcome"], decision["outcome"])
        items = "".join(f"<li>{html.escape(r)}</li>" for r in decision["reasons"])
        verdict = f"<h2>Decision: {word}</h2><ul>{items}</ul>"
    data = {"metrics": metrics, "champion": champion_metrics, "decision": decision,
            **({"per_class": per_class} if per_class else {})}
    imgs = "".join(f'<p><img src="{html.escape(p.name)}" alt="{html.escape(p.stem)}"></p>' for p in images)
    path.write_text(f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1><table>{fact_rows}</table>{verdict}
<h2>Holdout metrics</h2><table><tr><th>metric</th><th>challenger</th><th>champion (same holdout)</th></tr>{rows}</table>
{confusion}{imgs}
{_DATA_MARK}{html.escape(json.dumps(data, default=str))}</script>
</body></html>
""")
    if (path.parent / MONITOR_PNG).exists():  # a promote rewriting a monitored version's report keeps the plot
        path.write_text(with_monitor(path.read_text()))
    return path
