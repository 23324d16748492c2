"""Model step definitions: the estimator allow-list and its parameters, references, the promotion rule, PSI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dagspec.spec import DefinitionError, parse_definition
from dagspec.spec.ml_steps import ESTIMATORS, PromoteStep

TRAIN = {"id": "train", "kind": "train", "model": "m", "estimator": "logistic_regression",
         "features": [{"column": "amount", "type": "numeric"}, {"column": "channel", "type": "categorical"}],
         "target": "is_lost", "data": {"table": {"schema": "ml", "table": "f"}, "days": 30},
         "split": {"by": "time", "column": "ordered_at"}}


def problems(*steps: dict) -> list[str]:
    doc = {"dag_id": "x", "start_date": "2025-01-01", "steps": list(steps)}
    try:
        parse_definition(json.dumps(doc).encode(), "x.json")
    except DefinitionError as exc:
        return [str(p) for p in exc.problems]
    return []


def test_the_allow_list_matches_scikit_learn():
    import importlib

    for name, (task, path, params) in ESTIMATORS.items():
        module, cls = path.split(":")
        real = getattr(importlib.import_module(module), cls)().get_params()
        assert set(params) <= set(real), (name, set(params) - set(real))
        assert task in ("classification", "regression")


def test_a_valid_model_pipeline_parses():
    assert problems(TRAIN, {"id": "ev", "kind": "evaluate", "input": "train"},
                    {"id": "pr", "kind": "promote", "input": "ev", "primary": "roc_auc", "minimums": {"roc_auc": 0.6}}) == []


@pytest.mark.parametrize("change, expected", [
    ({"estimator": "random_forest"}, "unknown estimator 'random_forest'; did you mean 'random_forest_regressor'?"),
    ({"estimator": "os:system"}, "unknown estimator 'os:system'"),
    ({"params": {"max_iters": 10}}, "logistic_regression has no parameter 'max_iters'; did you mean 'max_iter'?"),
    ({"params": {"C": "big"}}, "parameter 'C' of logistic_regression must be int/float"),
    ({"target": "amount"}, "the target 'amount' is also a feature"),
    ({"split": {"by": "time", "column": "t", "holdout": 0.95}}, "$.steps[0].split.holdout"),
    ({"data": {"table": {"schema": "ml", "table": "f"}, "sql": "a.sql"}},
     "give exactly one of 'input', 'table', 'sql' or 'query'"),
])
def test_bad_train_steps_say_what_and_where(change, expected):
    found = problems({**TRAIN, **change})
    assert any(expected in p for p in found), found


def test_references_must_point_at_the_right_kind():
    found = problems(TRAIN, {"id": "ev", "kind": "evaluate", "input": "nope"},
                     {"id": "pr", "kind": "promote", "input": "train", "primary": "roc_auc"})
    assert any("$.steps[1].input: unknown step 'nope'" in p for p in found), found
    assert any("$.steps[2].input: step 'train' is a train step" in p for p in found), found
    found = problems({**TRAIN, "data": {"input": "missing_step"}})
    assert any("$.steps[0].data.input: unknown step 'missing_step'" in p for p in found), found


def promote(**kw) -> PromoteStep:
    return PromoteStep.model_validate({"id": "p", "kind": "promote", "input": "e", "primary": "roc_auc", **kw})


def test_first_model_needs_its_minimums():
    from dagspec.ml.metrics import decide

    step = promote(minimums={"roc_auc": 0.7, "log_loss": 0.5})
    assert decide(step, {"roc_auc": 0.75, "log_loss": 0.4}, None).promoted
    d = decide(step, {"roc_auc": 0.75, "log_loss": 0.6}, None)
    assert not d.promoted and "log_loss 0.6000 <= 0.5 (first-model maximum): FAILED" in d.reasons


def test_challenger_must_beat_by_the_margin_and_respect_guards():
    from dagspec.ml.metrics import decide

    step = promote(margin=0.01, guards=[{"metric": "log_loss", "max_degradation": 0.02}])
    champ = {"roc_auc": 0.70, "log_loss": 0.40}
    assert decide(step, {"roc_auc": 0.72, "log_loss": 0.41}, champ, "3").promoted
    assert not decide(step, {"roc_auc": 0.705, "log_loss": 0.40}, champ, "3").promoted  # within the margin
    guarded = decide(step, {"roc_auc": 0.80, "log_loss": 0.45}, champ, "3")
    assert not guarded.promoted and any(r.startswith("guard log_loss") and "FAILED" in r for r in guarded.reasons)
    lower = promote(primary="rmse", margin=0.5)
    assert decide(lower, {"rmse": 9.0}, {"rmse": 10.0}).promoted and not decide(lower, {"rmse": 9.8}, {"rmse": 10.0}).promoted


def test_psi_is_zero_for_the_same_data_and_large_for_a_shift():
    import pandas as pd

    from dagspec.ml.drift import compare, profile
    from dagspec.spec.ml_steps import Feature

    rng = np.random.default_rng(1)
    feats = [Feature(column="x", type="numeric"), Feature(column="c", type="categorical")]
    train = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "c": rng.choice(["a", "b"], 20_000).astype(object)})
    ref = profile(train, feats, seed=1)
    same = compare(ref, pd.DataFrame({"x": rng.normal(0, 1, 5_000), "c": rng.choice(["a", "b"], 5_000).astype(object)}))
    assert same["x"]["psi"] < 0.02 and same["c"]["psi"] < 0.01 and same["x"]["ks"] < 0.05
    shifted = np.array(["a"] * 4_000 + ["z"] * 1_000, dtype=object)
    moved = compare(ref, pd.DataFrame({"x": rng.normal(1.5, 1, 5_000), "c": shifted}))
    assert moved["x"]["psi"] > 1 and moved["x"]["ks"] > 0.4 and moved["c"]["psi"] > 0.5


def test_splits_do_not_leak_and_are_reproducible():
    import pandas as pd

    from dagspec.ml.features import holdout_mask
    from dagspec.spec.ml_steps import Split

    times = pd.DataFrame({"t": pd.to_datetime(["2025-01-01"] * 50 + ["2025-01-02"] * 30 + ["2025-01-03"] * 20, utc=True)})
    mask = holdout_mask(times, Split(by="time", column="t", holdout=0.25), seed=1)
    assert times.t[mask].min() > times.t[~mask].max()  # every held-out moment is later than every training one
    ids = pd.DataFrame({"customer_id": np.arange(5_000) % 700})
    split = Split(by="entity", column="customer_id", holdout=0.2)
    mask = holdout_mask(ids, split, seed=7)
    assert not set(ids.customer_id[mask]) & set(ids.customer_id[~mask])
    assert 0.1 < mask.mean() < 0.3
    assert (holdout_mask(ids, split, seed=7) == mask).all() and not (holdout_mask(ids, split, seed=8) == mask).all()
