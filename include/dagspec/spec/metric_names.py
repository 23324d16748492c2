"""The metric names a definition may give (its own module so step models in other modules can use them without
importing ml_steps, which references those models)."""

from __future__ import annotations

from typing import Literal

Metric = Literal["roc_auc", "pr_auc", "f1", "precision", "recall", "log_loss", "accuracy", "npv", "specificity",
                 "f1_macro", "f1_weighted", "precision_macro", "recall_macro", "rmse", "mae", "r2"]
