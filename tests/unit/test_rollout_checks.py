"""A staged rollout that could never be decided is refused at validate, each problem at its JSON path with its
fix; and at run time an undecided canary past its deadline is rolled back (the pure deadline rule here, the
registry side in tests/integration/test_ml_canary_timeout.py)."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import pytest

from dagspec.spec import DefinitionError, parse_definition
from dagspec.spec.canary_step import Rollout

TRAIN = {"id": "train", "kind": "train", "model": "m", "estimator": "logistic_regression",
         "features": [{"column": "amount", "type": "numeric"}, {"column": "channel", "type": "categorical"}],
         "target": "is_lost", "data": {"table": {"schema": "ml", "table": "f"}, "days": 30},
         "split": {"by": "time", "column": "ordered_at"}}
RULE = {"canary_share": 0.1, "window_days": 7, "metric": "roc_auc", "min_rows": 100}
SCORE = {"id": "score", "kind": "score", "model": "m", "data": {"table": {"schema": "ml", "table": "f"}},
         "keys": ["order_id"], "output": {"table": {"schema": "ml", "table": "scores"}}}
LABELS = {"data": {"table": {"schema": "ml", "table": "f"}}, "keys": ["order_id"], "label": "is_lost",
          "delay_days": 3, "metric": "roc_auc", "threshold": 0.6}


def problems(*steps: dict, train: dict | None = None, rule: dict | None = None) -> list[str]:
    chain = [{**TRAIN, **(train or {})}, {"id": "evaluate", "kind": "evaluate", "input": "train"},
             {"id": "promote", "kind": "promote", "input": "evaluate", "primary": "log_loss",
              "rollout": {**RULE, **(rule or {})}}]
    doc = {"dag_id": "x", "start_date": "2025-01-01", "steps": [*chain, *steps]}
    try:
        parse_definition(json.dumps(doc).encode(), "x.json")
    except DefinitionError as exc:
        return [str(p) for p in exc.problems]
    return []


def monitor(**kw) -> dict:
    return {"id": "watch", "kind": "monitor", "model": "m", "input": "score", **kw}


def test_a_rollout_with_a_labelled_monitor_or_none_in_this_file_is_accepted():
    assert problems(SCORE, monitor(labels=LABELS)) == []
    assert problems() == []  # the monitor may live in the daily definition: the deadline covers it at run time


def test_a_rollout_whose_monitors_have_no_labels_is_refused_at_the_rollout():
    [problem] = problems(SCORE, monitor())
    assert problem.startswith("x.json: $.steps[2].rollout: the canary of model 'm' can never be decided: monitor "
                              "step 'watch' has no labels")
    assert "(fix: give monitor step 'watch' labels: data, keys, label, delay_days, metric and threshold" in problem


@pytest.mark.parametrize(("train", "rule", "path", "fix"), [
    ({}, {"metric": "rmse"}, "$.steps[2].rollout.metric", "use a classification metric, not rmse"),
    ({"estimator": "ridge"}, {"metric": "roc_auc"}, "$.steps[2].rollout.metric", "use one of: rmse, mae, r2"),
    ({"classes": ["a", "b", "c"]}, {"metric": "log_loss"}, "$.steps[2].rollout.metric",
     "use one of: accuracy, f1_macro, f1_weighted, precision_macro, recall_macro"),
])
def test_a_rollout_metric_the_labels_cannot_measure_is_refused(train, rule, path, fix):
    got = problems(train=train, rule=rule)
    assert [p for p in got if f": {path}: " in p] == [
        f"x.json: {path}: the canary of model 'm' cannot be judged on the realised {rule['metric']}: it is not "
        f"measured for this model's target (fix: {fix})"]


def test_a_multi_class_monitor_metric_of_one_positive_class_is_refused():
    got = problems(SCORE, monitor(labels=LABELS), train={"classes": ["a", "b", "c"]}, rule={"metric": "accuracy"})
    assert got == ["x.json: $.steps[4].labels.metric: the realised roc_auc of model 'm' is not measured for its "
                   "target (fix: use one of: accuracy, f1_macro, f1_weighted, precision_macro, recall_macro)"]


def test_labels_that_arrive_after_the_deadline_are_refused():
    assert problems(SCORE, monitor(labels={**LABELS, "delay_days": 10}), rule={"timeout_days": 10}) == [
        "x.json: $.steps[2].rollout.timeout_days: timeout_days 10 is not after the labels of monitor step 'watch' "
        "arrive (delay_days 10): the canary would time out before its window's labels are in "
        "(fix: set timeout_days above 10)"]


def test_a_monitor_of_another_models_scores_is_refused():
    assert problems({**SCORE, "model": "other"}, monitor(labels=LABELS)) == [
        "x.json: $.steps[4].model: monitor step 'watch' watches model 'm', but score step 'score' scores model "
        "'other' (fix: set 'model' to 'other', or monitor a score step of 'm')"]


def test_the_deadline_is_timeout_days_after_the_windows_last_batch():
    from dagspec.stages.ml.canary import START_TAG, Staged, timed_out

    found = Staged(SimpleNamespace(tags={START_TAG: "2025-07-01"}), Rollout(**RULE, timeout_days=5))  # last: 07-07
    assert timed_out(found, date(2025, 7, 12), "why") is None
    reason = timed_out(found, date(2025, 7, 13), "no labels")
    assert reason == ("timeout: undecided on 2025-07-13, 5 day(s) after the window's last batch 2025-07-07 "
                      "(deadline 2025-07-12): no labels; rolled back, nothing shows the canary is better than the "
                      "champion")
