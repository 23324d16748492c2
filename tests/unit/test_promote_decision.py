"""The promotion rule fails safe: a metric that cannot be measured (NaN, or missing because the registry drops
NaN metrics) never lets a challenger through, and the decision says why (issue 6)."""

from __future__ import annotations

import json
import math

import pytest

from dagspec.ml.metrics import decide
from dagspec.spec.ml_steps import PromoteStep
from dagspec.stages.ml.common import json_safe

NAN = math.nan
CHAMP = {"roc_auc": 0.70, "log_loss": 0.40}


def promote(**kw) -> PromoteStep:
    return PromoteStep.model_validate({"id": "p", "kind": "promote", "input": "e", "primary": "roc_auc",
                                       "margin": 0.005, "guards": [{"metric": "log_loss", "max_degradation": 0.02}],
                                       **kw})


def check(decision, kind: str, metric: str) -> dict:
    return next(c for c in decision.checks if c["check"] == kind and c["metric"] == metric)


@pytest.mark.parametrize("challenger", [{"roc_auc": NAN, "log_loss": 0.30}, {"log_loss": 0.30}],
                         ids=["nan", "missing"])
def test_a_challenger_whose_primary_metric_is_nan_is_never_promoted(challenger):
    d = decide(promote(), challenger, CHAMP, "3")
    assert not d.promoted
    primary = check(d, "primary", "roc_auc")
    assert primary["passed"] is False and primary["unmeasured"] == ["challenger"]
    assert d.reasons[0] == ("roc_auc: challenger nan vs champion v3 0.7000: the challenger cannot be measured on "
                            "this holdout (NaN): not promoted, champion unchanged")


@pytest.mark.parametrize("champion", [{"roc_auc": NAN, "log_loss": 0.40}, {"log_loss": 0.40}],
                         ids=["nan", "missing"])
def test_a_champion_whose_primary_metric_is_nan_is_not_replaced_and_the_reason_says_so(champion):
    # Before issue 6 this promoted: "the champion cannot be measured; the challenger can".
    d = decide(promote(), {"roc_auc": 0.99, "log_loss": 0.30}, champion, "3")
    assert not d.promoted
    primary = check(d, "primary", "roc_auc")
    assert primary["passed"] is False and primary["unmeasured"] == ["champion"]
    assert d.reasons[0].startswith("roc_auc: challenger 0.9900 vs champion v3 nan: the champion cannot be measured on "
                                   "this holdout (NaN), so the challenger cannot be shown to beat it: not promoted, "
                                   "champion unchanged")
    assert "dagspec models rollback" in d.reasons[0]  # what to do if the challenger should win anyway
    assert check(d, "guard", "log_loss")["passed"] is True  # the guard itself was fine: only the primary blocks


def test_a_champion_that_could_not_score_the_holdout_at_all_fails_every_comparison_with_the_evaluate_note():
    note = "champion v3 cannot score this holdout: column 'segment' is missing"
    d = decide(promote(), {"roc_auc": 0.99, "log_loss": 0.30}, {}, "3", note)
    assert not d.promoted
    assert [(c["check"], c["passed"], c["unmeasured"]) for c in d.checks] == [
        ("primary", False, ["champion"]), ("guard", False, ["champion"])]
    assert f"evaluate: {note}" in d.reasons
    assert any(r.startswith("guard log_loss:") and "champion cannot be measured" in r and r.endswith("FAILED")
               for r in d.reasons), d.reasons


def test_the_evaluate_note_is_left_out_when_the_champion_was_measured():
    d = decide(promote(), {"roc_auc": 0.72, "log_loss": 0.40}, CHAMP, "3", "champion v3 measured on the same 9 rows")
    assert d.promoted and not any(r.startswith("evaluate:") for r in d.reasons)
    assert [c["unmeasured"] for c in d.checks] == [[], []]


@pytest.mark.parametrize("challenger,champion,unmeasured", [
    ({"roc_auc": 0.80, "log_loss": NAN}, CHAMP, ["challenger"]),
    ({"roc_auc": 0.80, "log_loss": 0.30}, {"roc_auc": 0.70, "log_loss": NAN}, ["champion"]),
    ({"roc_auc": 0.80}, {"roc_auc": 0.70}, ["challenger", "champion"]),
], ids=["challenger-nan", "champion-nan", "both-missing"])
def test_a_guard_that_cannot_be_measured_counts_as_degraded(challenger, champion, unmeasured):
    d = decide(promote(), challenger, champion, "3")
    assert not d.promoted
    assert check(d, "primary", "roc_auc")["passed"] is True  # the primary metric alone would have promoted
    guard = check(d, "guard", "log_loss")
    assert guard["passed"] is False and guard["unmeasured"] == unmeasured
    reason = next(r for r in d.reasons if r.startswith("guard log_loss:"))
    assert f"the {' and the '.join(unmeasured)} cannot be measured on this holdout (NaN), treated as degraded " \
           "(limit 0.02): FAILED" in reason


def test_lower_is_better_metrics_fail_safe_too():
    step = promote(primary="rmse", guards=[{"metric": "mae", "max_degradation": 0.5}])
    assert decide(step, {"rmse": 9.0, "mae": 5.0}, {"rmse": 10.0, "mae": 5.0}, "1").promoted
    assert not decide(step, {"rmse": NAN, "mae": 5.0}, {"rmse": 10.0, "mae": 5.0}, "1").promoted
    assert not decide(step, {"rmse": 9.0, "mae": 5.0}, {"rmse": NAN, "mae": 5.0}, "1").promoted
    assert not decide(step, {"rmse": 9.0, "mae": NAN}, {"rmse": 10.0, "mae": 5.0}, "1").promoted


def test_the_first_model_is_not_promoted_when_its_primary_metric_is_nan_even_without_minimums():
    d = decide(promote(), {"roc_auc": NAN, "log_loss": 0.3}, None)
    assert not d.promoted and d.champion is None
    assert d.checks == [{"check": "primary", "metric": "roc_auc", "challenger": d.checks[0]["challenger"],
                         "champion": None, "unmeasured": ["challenger"], "passed": False}]
    assert "cannot be measured on this holdout" in d.reasons[0] and "first model not promoted" in d.reasons[0]
    assert decide(promote(), {"roc_auc": 0.6, "log_loss": 0.3}, None).reasons == [
        "first model and no minimums set: promoted"]


def test_a_nan_first_model_minimum_fails_and_says_why():
    d = decide(promote(minimums={"roc_auc": 0.6, "log_loss": 0.5}), {"roc_auc": 0.8}, None)
    assert not d.promoted
    assert "log_loss nan <= 0.5 (first-model maximum): FAILED (NaN: cannot be measured on this holdout)" in d.reasons


def test_the_decision_record_with_nan_numbers_is_valid_json():
    d = decide(promote(), {"roc_auc": 0.99, "log_loss": NAN}, {"roc_auc": NAN}, "3")
    record = json.loads(json.dumps(json_safe(d.as_dict()), allow_nan=False))
    assert record["promoted"] is False
    assert record["checks"][0]["champion"] is None and record["checks"][0]["unmeasured"] == ["champion"]
    assert record["checks"][1]["unmeasured"] == ["challenger", "champion"]
