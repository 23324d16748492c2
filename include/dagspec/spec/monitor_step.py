"""The monitor step: what a score step's batches look like against the champion's reference, batch by batch.

Its own module because ml_steps.py is at its size limit; it is one of the ML kinds all the same
(ML_KINDS, the step union, the plan).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dagspec.spec.base import Identifier, StepId, Strict
from dagspec.spec.ml_steps import Metric, MLData, ModelStepBase


class MonitorThresholds(Strict):
    """Where each monitored number becomes a breach. Defaults are the usual rules of thumb."""

    prediction_psi: float = Field(default=0.2, gt=0, le=100,
                                  description="PSI of the batch's predictions against the champion's holdout "
                                  "predictions above this is a breach.", examples=[0.25])
    volume_change: float = Field(default=0.5, gt=0, le=1000,
                                 description="Rows differing from the median of the recent batches' rows by more "
                                 "than this share (0.5: half) is a breach.", examples=[0.3])
    null_share: float = Field(default=0.05, ge=0, le=1,
                              description="A feature whose share of nulls exceeds the training share by more than "
                              "this is a breach.", examples=[0.02])
    out_of_range_share: float = Field(default=0.05, ge=0, le=1,
                                      description="A numeric feature with more than this share of values outside "
                                      "the training min..max is a breach.", examples=[0.01])


class MonitorLabels(Strict):
    """Labels that arrive later: joined on `keys` with the predictions of the batch `delay_days` back."""

    data: MLData = Field(description="The labels: a table, a SQL file or an inline SELECT, read for the labelled "
                         "batch's window (:from_date, :to_date); no 'days'.",
                         examples=[{"query": "SELECT order_id, is_lost FROM ml.order_features "
                                    "WHERE ordered_at >= :from_date AND ordered_at < :to_date"}])
    keys: list[Identifier] = Field(min_length=1, description="Columns joining a label to its prediction (they must "
                                   "be among the score step's keys).", examples=[["order_id"]])
    label: Identifier = Field(description="The label column (classification: 0/1 or true/false).",
                              examples=["is_lost"])
    delay_days: int = Field(ge=1, le=366, strict=True, description="Days after a batch its labels are complete: "
                            "the run for batch D measures batch D - delay_days.", examples=[7])
    metric: Metric = Field(description="The realised metric thresholded (direction known per metric).",
                           examples=["roc_auc", "rmse"])
    threshold: float = Field(description="A realised metric worse than this is a breach (below it, or above it for "
                             "rmse/mae/log_loss).", examples=[0.65])

    @model_validator(mode="after")
    def _per_batch(self) -> MonitorLabels:
        if self.data.days is not None:
            raise ValueError("labels are read for the labelled batch's window: leave 'data.days' out")
        if self.data.input is not None:
            raise ValueError("labels come from a warehouse table, a SQL file or an inline query, not a step's output")
        if self.label in self.keys:
            raise ValueError(f"the label {self.label!r} is also a key")
        return self


class MonitorStep(ModelStepBase):
    """Prediction drift, row volume, feature nulls and ranges of a score step's batches, and, once labels arrive,
    the realised metrics of the version that made the predictions; each recorded per batch_date."""

    kind: Literal["monitor"] = Field(description="Step kind: monitor a score step's batches.", examples=["monitor"])
    input: StepId = Field(description="The score step whose batches are monitored.", examples=["score_orders"])
    thresholds: MonitorThresholds = Field(default_factory=MonitorThresholds,
                                          description="Where each number becomes a breach.",
                                          examples=[{"prediction_psi": 0.25, "volume_change": 0.3}],
                                          json_schema_extra={"default": {"prediction_psi": 0.2, "volume_change": 0.5,
                                                                         "null_share": 0.05,
                                                                         "out_of_range_share": 0.05}})
    volume_batches: int = Field(default=7, ge=1, le=366, strict=True,
                                description="How many recent recorded batches the row volume is compared with.",
                                examples=[14])
    labels: MonitorLabels | None = Field(default=None, description="Delayed labels for the realised metrics.",
                                         examples=[{"data": {"table": {"schema": "ml", "table": "order_features"}},
                                                    "keys": ["order_id"], "label": "is_lost", "delay_days": 7,
                                                    "metric": "roc_auc", "threshold": 0.65}])
    on_breach: Literal["warn", "fail", "retrain"] = Field(
        default="warn", description="warn: log and alert; fail: the task fails; retrain: also trigger the pipelines "
        "that train the model (in Airflow: the retrain Asset).", examples=["retrain"])
    chunk_rows: int = Field(default=500_000, ge=100, le=10_000_000, strict=True,
                            description="Rows read at a time; bounds memory.", examples=[100_000])

    def ref_fields(self) -> list[tuple[tuple[str | int, ...], str]]:
        return [(("input",), self.input)]

    def refs(self) -> list[str]:
        return [self.input]
