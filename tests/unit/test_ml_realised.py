"""Realised metrics of scored rows beside their labels, for each kind of model, and which metric fits which."""

from __future__ import annotations

import pandas as pd
import pytest

from dagspec.errors import StepFailed
from dagspec.spec.rollout_checks import metric_fit
from dagspec.stages.ml.monitor_labels import measured, predicted_column

CLASSES = ["a", "b", "c"]


def test_a_multi_class_model_is_measured_on_its_top_class_and_a_new_label_counts_against_it():
    df = pd.DataFrame({"y": ["a", "b", "c", "a", "d", None], "prediction": ["a", "b", "a", "a", "a", "b"]})
    rows, scores = measured(df, "y", "prediction", "classification", CLASSES)
    assert rows == 5 and scores["unknown_labels"] == 1  # the unlabelled row does not count; 'd' is no class
    assert scores["accuracy"] == pytest.approx(3 / 5)
    # per class over a, b, c: a P=2/4 R=1, b P=1 R=1, c P=0 R=0 -> F1 2/3, 1, 0
    assert scores["f1_macro"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert "log_loss" not in scores and "roc_auc" not in scores


def test_whole_number_classes_and_a_0_1_model_and_a_regressor():
    ints = pd.DataFrame({"y": [0, 1, 2, 2], "prediction": [0, 1, 2, 1]})
    assert measured(ints, "y", "prediction", "classification", [0, 1, 2])[1]["accuracy"] == pytest.approx(0.75)
    binary = pd.DataFrame({"y": [0, 1, 1, 0], "probability": [0.1, 0.8, 0.7, 0.4]})
    assert measured(binary, "y", "probability", "classification", None)[1]["roc_auc"] == 1.0
    reg = pd.DataFrame({"y": [1.0, 2.0], "prediction": [1.5, 2.5]})
    assert measured(reg, "y", "prediction", "regression", None)[1]["mae"] == pytest.approx(0.5)
    assert [predicted_column(*k) for k in (("classification", None), ("classification", CLASSES), ("regression", None))] == [
        "probability",
        "prediction",
        "prediction",
    ]


def test_a_0_1_label_that_is_not_0_1_names_the_column():
    with pytest.raises(StepFailed, match="labels: classification target 'y' must be 0/1"):
        measured(pd.DataFrame({"y": [3, 4], "probability": [0.1, 0.2]}), "y", "probability", "classification", None)


@pytest.mark.parametrize(
    ("metric", "task", "multiclass", "fits"),
    [
        ("f1_macro", "classification", True, True),
        ("roc_auc", "classification", True, False),
        ("log_loss", "classification", True, False),
        ("f1_macro", "classification", False, False),
        ("accuracy", "classification", False, True),
        ("f1_macro", "classification", None, True),
        ("rmse", "classification", None, False),
        ("rmse", "regression", None, True),
        ("accuracy", "regression", None, False),
    ],
)
def test_which_realised_metric_fits_which_model(metric, task, multiclass, fits):
    assert (metric_fit(metric, task, multiclass) is None) is fits
