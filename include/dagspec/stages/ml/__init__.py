"""The model stages: train, evaluate, promote, score, drift, monitor. The leaves are imported on demand, so a task
pays only for its own stage's dependencies; they import nothing from this module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def stage(kind: str) -> Callable[..., Any]:
    """The run function of a model step kind."""
    if kind == "train":
        from dagspec.stages.ml.train import run_train as fn
    elif kind == "evaluate":
        from dagspec.stages.ml.evaluate import run_evaluate as fn
    elif kind == "promote":
        from dagspec.stages.ml.evaluate import run_promote as fn
    elif kind == "score":
        from dagspec.stages.ml.score import run_score as fn
    elif kind == "drift":
        from dagspec.stages.ml.drift import run_drift as fn
    elif kind == "monitor":
        from dagspec.stages.ml.monitor import run_monitor as fn
    else:
        raise ValueError(f"no model stage for step kind {kind!r}")
    return fn


__all__ = ["stage"]
