"""A staged promotion (issue #17 point 3): the winning challenger becomes the `canary`, scores a share of each
batch, and the monitor step's delayed labels decide whether it replaces the champion or is rolled back.

Referenced by PromoteStep.rollout; kept here because ml_steps.py is at its size limit.
"""

from __future__ import annotations

from pydantic import Field

from dagspec.spec.base import Strict
from dagspec.spec.metric_names import Metric


class Rollout(Strict):
    """How a canary is judged: its realised metric against the champion's, over the labelled batches of a window."""

    canary_share: float = Field(gt=0, lt=1, strict=True,
                                description="Share of each batch's rows the canary scores (chosen by a stable hash of the "
                                "score step's keys: a row always goes to the same model).",
                                examples=[0.1])
    window_days: int = Field(ge=1, le=366, strict=True, description="Batches from the day the canary is staged "
                             "that are compared. The decision is taken once the monitor step has the labels of "
                             "the window's last batch.", examples=[7])
    metric: Metric = Field(description="The realised metric compared (direction known per metric).",
                           examples=["roc_auc", "rmse"])
    margin: float = Field(default=0.0, ge=0, le=1_000_000, strict=True,
                          description="The canary must beat the champion by more than this.", examples=[0.005])
    min_rows: int = Field(default=500, ge=1, le=1_000_000_000, strict=True,
                          description="Labelled rows each model needs in the window. Fewer once the window's labels "
                          "are in: the canary is rolled back (no evidence it is better).", examples=[500])
    timeout_days: int = Field(default=30, ge=1, le=366, strict=True,
                              description="Days after the window's last batch by which the rollout must be decided. "
                              "A canary still undecided then (its labels never came, or no monitor step with labels "
                              "judges it) is rolled back and the champion scores every row again; the decision and "
                              "its reason are recorded. Must be more than the monitor's labels.delay_days.",
                              examples=[30])


__all__ = ["Rollout"]
