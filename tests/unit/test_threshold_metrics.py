"""Classification metrics at a chosen threshold, computed by hand on a holdout small enough to count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dagspec.ml.metrics import classification
from dagspec.ml.report import write_html
from dagspec.spec.ml_steps import CLASSIFICATION_METRICS

Y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0])
P = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.4, 0.05, 0.55, 0.5])


@pytest.mark.parametrize("threshold, tp, fp, tn, fn", [(0.5, 3, 2, 4, 1), (0.3, 3, 4, 2, 1), (0.95, 0, 0, 6, 4)])
def test_counts_and_rates_at_the_threshold(threshold, tp, fp, tn, fn):
    m = classification(Y, P, threshold)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
    assert m["accuracy"] == pytest.approx((tp + tn) / 10)
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["npv"] == pytest.approx(tn / (tn + fn))
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    assert set(CLASSIFICATION_METRICS) <= set(m)


def test_a_threshold_nothing_falls_below_has_no_npv():
    m = classification(Y, P, 0.01)
    assert (m["tn"], m["fn"]) == (0, 0) and math.isnan(m["npv"]) and m["specificity"] == 0


def test_the_report_shows_the_confusion_matrix_at_its_threshold(tmp_path):
    m = classification(Y, P, 0.3)
    page = write_html(tmp_path / "r.html", title="t", facts={"threshold": 0.3}, metrics=m, champion_metrics=None,
                      images=[]).read_text()
    assert "Confusion matrix (challenger, threshold 0.3)" in page
    assert "<th>actual 1</th><td>3 (TP)</td><td>1 (FN)</td>" in page
    assert "<th>actual 0</th><td>4 (FP)</td><td>2 (TN)</td>" in page
    assert "<td>npv</td>" in page and "<td>tp</td>" not in page  # counts are in the matrix, not the metric table


def test_threshold_metrics_can_be_promoted_on():
    from dagspec.spec.ml_steps import PromoteStep

    step = PromoteStep.model_validate({"id": "p", "kind": "promote", "input": "e", "primary": "npv",
                                       "guards": [{"metric": "specificity", "max_degradation": 0.05}]})
    assert step.primary == "npv"
