"""Hostile rollout rules: a share outside (0, 1), an empty or endless window, an unknown metric, a stray key or a
string where a number goes are refused when the definition is validated, each named by its JSON path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagspec.spec import DefinitionError
from dagspec.spec.load import parse_definition

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"canary_share": 0.1, "window_days": 7, "metric": "roc_auc", "margin": 0.0, "min_rows": 500}
PATH = "$.steps[2].rollout"


def problems(rollout) -> list[tuple[str, str]]:
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())
    data["steps"][2]["rollout"] = rollout
    with pytest.raises(DefinitionError) as info:
        parse_definition(json.dumps(data).encode(), "retrain.json")
    return [(p.path, p.message) for p in info.value.problems]


def test_the_good_rule_loads():
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())
    data["steps"][2]["rollout"] = GOOD
    pipeline = parse_definition(json.dumps(data).encode(), "retrain.json")
    assert pipeline.step("promote").rollout.canary_share == 0.1


@pytest.mark.parametrize(("change", "field"), [
    ({"canary_share": 0}, "canary_share"), ({"canary_share": 1}, "canary_share"),
    ({"canary_share": 1.5}, "canary_share"), ({"canary_share": -0.1}, "canary_share"),
    ({"canary_share": "0.1"}, "canary_share"),
    ({"window_days": 0}, "window_days"), ({"window_days": 100_000}, "window_days"),
    ({"window_days": 7.5}, "window_days"), ({"min_rows": 0}, "min_rows"), ({"margin": -1}, "margin"),
    ({"metric": "auc"}, "metric"), ({"metric": "__import__('os')"}, "metric"),
    ({"exec": "rm -rf /"}, "exec"),
])
def test_a_bad_rule_is_refused_at_validate_with_its_path(change, field):
    found = problems({**GOOD, **change})
    assert found and all(path == f"{PATH}.{field}" for path, _ in found), found


def test_a_missing_rule_field_and_an_unknown_metric_say_what_is_allowed():
    assert [p for p, _ in problems({k: v for k, v in GOOD.items() if k != "window_days"})] == [f"{PATH}.window_days"]
    ((path, message),) = problems({**GOOD, "metric": "auc"})
    assert path == f"{PATH}.metric" and "roc_auc" in message
