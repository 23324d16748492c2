"""Preprocessing names and parameters a hostile definition might send: none imports anything, each is refused at
its own JSON path with the allow-list; binary-only metrics on a declared multi-class target are refused."""

from __future__ import annotations

import json

import pytest

from dagspec.spec import DefinitionError, parse_definition

ALLOWED = "use one of: log1p, clip, power, quantile_bins, polynomial, target_encoding"


def problems(preprocess: list, column_type: str = "numeric", **train) -> list[str]:
    step = {"id": "train", "kind": "train", "model": "m", "estimator": "logistic_regression", "target": "y",
            "features": [{"column": "x", "type": column_type, "preprocess": preprocess}],
            "data": {"table": {"schema": "ml", "table": "t"}}, "split": {"by": "time", "column": "at"}, **train}
    steps = [step, {"id": "ev", "kind": "evaluate", "input": "train"},
             {"id": "pr", "kind": "promote", "input": "ev", "primary": "roc_auc", "minimums": {"npv": 0.5}}]
    doc = {"dag_id": "x", "start_date": "2025-01-01", "steps": steps}
    try:
        parse_definition(json.dumps(doc).encode(), "x.json")
    except DefinitionError as exc:
        return [str(p) for p in exc.problems]
    return []


@pytest.mark.parametrize("name", ["os.system", "sklearn.preprocessing:FunctionTransformer", "__import__",
                                  "numpy.log1p", "eval", "Log1p", "log1p ", "", "x" * 10_000])
def test_names_outside_the_allow_list_are_refused_with_the_list(name):
    found = problems([{"name": name}])
    assert len(found) == 1 and "$.steps[0].features[0].preprocess[0].name: unknown preprocessing" in found[0]
    assert ALLOWED in found[0] and len(found[0]) < 400  # a huge name is cut, never echoed whole


@pytest.mark.parametrize("item, where, says", [
    ({"name": "polynomial", "degree": 4}, "preprocess[0].degree", "use a value <= 3"),
    ({"name": "polynomial", "degree": 2.5}, "preprocess[0].degree", "polynomial 'degree'"),
    ({"name": "quantile_bins", "n_bins": 1}, "preprocess[0].n_bins", "use a value >= 2"),
    ({"name": "quantile_bins", "n_bins": 10**9}, "preprocess[0].n_bins", "use a value <= 100"),
    ({"name": "quantile_bins", "strategy": "os.system"}, "preprocess[0].strategy", "'quantile', 'uniform' or 'kmeans'"),
    ({"name": "clip", "min": 1e300}, "preprocess[0].min", "use a value <= 1000000000000000.0"),
    ({"name": "clip", "min": 10, "max": 1}, "preprocess[0]", "clip 'min' (10.0) must be below 'max' (1.0)"),
    ({"name": "clip"}, "preprocess[0]", "clip needs 'min', 'max' or both"),
    ({"name": "log1p", "func": "os.system"}, "preprocess[0].func", "log1p has no parameter 'func'"),
    ({"name": "clip", "min": 0, "kw_args": {"a_max": 1}}, "preprocess[0].kw_args", "parameters it takes: min, max"),
    ({"name": "power", "method": "exec"}, "preprocess[0].method", "'yeo-johnson' or 'box-cox'"),
])
def test_parameters_out_of_bounds_or_unknown_are_refused_at_their_path(item, where, says):
    found = problems([item])
    assert any(f"$.steps[0].features[0].{where}:" in p and says in p for p in found), found


def test_a_transformer_on_the_wrong_type_or_out_of_order_is_refused():
    assert any("preprocess[0]: target_encoding works on categories" in p for p in problems([{"name": "target_encoding"}]))
    assert any("preprocess[0]: log1p works on numbers" in p for p in problems([{"name": "log1p"}], "categorical"))
    found = problems([{"name": "polynomial"}, {"name": "log1p"}])
    assert any("preprocess[0]: polynomial turns one column into several, so it must come last" in p for p in found)
    assert any("preprocess[4]" in p or "at most 4" in p for p in problems([{"name": "log1p"}] * 5))


def test_binary_only_metrics_on_a_declared_multi_class_target_are_refused_at_validate():
    found = problems([], classes=["a", "b", "c"])
    assert any("$.steps[2].primary: roc_auc is not measured for a multi-class target" in p
               and "use one of: accuracy, f1_macro" in p for p in found), found
    assert any("$.steps[2].minimums.npv: npv is not measured" in p for p in found), found
    assert problems([], classes=["a", "b", "c"], estimator="ridge") and problems([], classes=[1, "b", "c"])
