"""A step with nothing to do yet (StepSkipped) skips, with what needs it, in the CLI runner and the lookback outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dagspec import runner
from dagspec.errors import StepSkipped
from dagspec.spec import load_definition
from dagspec.windows import Window

ROOT = Path(__file__).resolve().parents[2]
DAILY = load_definition(ROOT / "dags/definitions/orders_model.json")
RETRAIN = load_definition(ROOT / "dags/definitions/orders_model_retrain.json")
WINDOW = Window(datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC))


def test_a_skipped_step_skips_what_needs_it_and_the_others_run(monkeypatch):
    ran = []

    def fake_run_step(pipeline, step_id, *args, **kwargs):
        ran.append(step_id)
        if step_id == "train":
            raise StepSkipped("no training data yet")
        return {"ok": step_id}

    monkeypatch.setattr(runner, "run_step", fake_run_step)
    seen = []
    results = runner.run_pipeline(RETRAIN, WINDOW, on_step=lambda s, state, _r: seen.append((s, state)))
    assert ran == ["train"]  # evaluate and promote never ran: they need the model train did not make
    assert seen == [("train", "running"), ("train", "skipped"), ("evaluate", "skipped"), ("promote", "skipped")]
    assert results["train"] == "skipped: no training data yet" and results["promote"] == "skipped: evaluate skipped"


def test_a_skipped_score_leaves_the_rest_of_the_daily_run_alone(monkeypatch):
    def fake_run_step(pipeline, step_id, *args, **kwargs):
        if step_id == "score_orders":
            raise StepSkipped("no champion yet")
        return step_id

    monkeypatch.setattr(runner, "run_step", fake_run_step)
    results = runner.run_pipeline(DAILY, WINDOW)
    assert results["drift_check"] == "drift_check" and results["score_orders"] == "skipped: no champion yet"


@pytest.mark.parametrize(("marks", "want"), [
    ({"order_features": True, "score_orders": "skipped"}, {"order_features": "success", "score_orders": "skipped"}),
    ({"order_features": "skipped", "score_orders": None}, {"order_features": "skipped", "score_orders": "skipped"}),
    ({"order_features": True, "score_orders": None}, {"order_features": "success", "score_orders": "failed"}),
])
def test_the_outcome_counts_skipped_steps_and_those_airflow_skipped_after_them(marks, want):
    from dagspec.airflow.lookback import step_states

    assert step_states(DAILY, marks) == want
