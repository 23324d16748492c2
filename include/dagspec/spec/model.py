"""The definition model, v1: what a JSON drop may say, with the rules that make it runnable.

One name to import the whole model by; each part lives in its own module: base (shared building
blocks), sources, batch_steps (extract, validate, transform), publish_steps, ml_steps (model steps)
and pipeline (the Pipeline, its settings and the reference rules between steps).
"""

from dagspec.spec.base import IDENTIFIER, ConnRef, Identifier, StepBase, StepId, Strict, TableRef
from dagspec.spec.batch_steps import Expectation, ExtractStep, TransformStep, ValidateStep
from dagspec.spec.ml_steps import DriftStep, EvaluateStep, PromoteStep, ScoreStep, TrainStep
from dagspec.spec.monitor_step import MonitorLabels, MonitorStep, MonitorThresholds
from dagspec.spec.pipeline import ASSET_URI, DAG_ID, KIND_OUTPUTS, REFERENCE_RULES, Alerts, Freshness, Pipeline, Step
from dagspec.spec.publish_steps import BigQueryTarget, EmailTarget, Export, PublishStep, SheetTarget
from dagspec.spec.sources import BigQuerySource, ObjectSource, SheetSource, Source, SqlSource

__all__ = [
    "ASSET_URI", "DAG_ID", "IDENTIFIER", "KIND_OUTPUTS", "REFERENCE_RULES",
    "Alerts", "BigQuerySource", "BigQueryTarget", "ConnRef", "DriftStep", "EmailTarget", "EvaluateStep", "Expectation",
    "Export", "ExtractStep", "Freshness", "Identifier", "MonitorLabels", "MonitorStep", "MonitorThresholds",
    "ObjectSource", "Pipeline", "PromoteStep", "PublishStep", "ScoreStep",
    "SheetSource", "SheetTarget", "Source", "SqlSource", "Step", "StepBase", "StepId", "Strict", "TableRef", "TrainStep",
    "TransformStep", "ValidateStep",
]
