"""Metrics of a classifier with more than two classes: the promotable ones (accuracy, macro/weighted F1, macro
precision and recall, log loss) and what the report shows beside them (per-class precision/recall, the confusion
matrix). The predicted class is the most probable one; there is no threshold."""

from __future__ import annotations

import html
from typing import Any

import numpy as np


def predicted(proba: np.ndarray, classes: list) -> np.ndarray:
    return np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]


def scores(y: np.ndarray, proba: np.ndarray, classes: list) -> dict[str, float]:
    from sklearn.metrics import log_loss

    return {**label_scores(y, predicted(proba, classes), classes),
            "log_loss": float(log_loss(y, np.clip(proba, 1e-15, 1), labels=classes))}


def label_scores(y: np.ndarray, guess: np.ndarray, classes: list) -> dict[str, float]:
    """What the predicted classes alone measure (a score table keeps only those, not every class's probability).
    Averages run over the model's `classes`: a label the model never saw counts against accuracy, and its own
    F1 is not averaged in (the model could not predict it)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    guess = _same_kind(np.asarray(guess, dtype=object), y)
    kw: dict[str, Any] = {"labels": classes, "zero_division": 0}
    return {
        "accuracy": float(accuracy_score(y, guess)),
        "f1_macro": float(f1_score(y, guess, average="macro", **kw)),
        "f1_weighted": float(f1_score(y, guess, average="weighted", **kw)),
        "precision_macro": float(precision_score(y, guess, average="macro", **kw)),
        "recall_macro": float(recall_score(y, guess, average="macro", **kw)),
    }


def per_class(y: np.ndarray, proba: np.ndarray, classes: list) -> dict[str, Any]:
    """{"classes": [...], "precision": [...], "recall": [...], "support": [...], "confusion": rows actual x predicted}."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    guess = _same_kind(predicted(proba, classes), y)
    precision, recall, _, support = precision_recall_fscore_support(y, guess, labels=classes, zero_division=0)
    return {"classes": [str(c) for c in classes], "precision": precision.tolist(), "recall": recall.tolist(),
            "support": support.tolist(), "confusion": confusion_matrix(y, guess, labels=classes).tolist()}


def _same_kind(guess: np.ndarray, y: np.ndarray) -> np.ndarray:
    return guess.astype(y.dtype) if y.dtype != object else guess


def report_html(table: dict[str, Any]) -> str:
    """The per-class table and the confusion matrix (rows: actual, columns: predicted), escaped: labels are data."""
    names = [html.escape(c) for c in table["classes"]]
    rows = "".join(f"<tr><td>{n}</td><td>{p:.4f}</td><td>{r:.4f}</td><td>{s}</td></tr>"
                   for n, p, r, s in zip(names, table["precision"], table["recall"], table["support"], strict=True))
    head = "".join(f"<th>predicted {n}</th>" for n in names)
    cells = "".join(f"<tr><th>actual {n}</th>{''.join(f'<td>{v}</td>' for v in row)}</tr>"
                    for n, row in zip(names, table["confusion"], strict=True))
    return ("<h2>Per class (challenger)</h2><table><tr><th>class</th><th>precision</th><th>recall</th>"
            f"<th>rows</th></tr>{rows}</table><h2>Confusion matrix (challenger, most probable class)</h2>"
            f"<table><tr><th></th>{head}</tr>{cells}</table>")
