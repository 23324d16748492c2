"""The Airflow side of model pipelines: drift -> an Asset event -> the pipelines that train the model.

Each trained model has one Asset, `dagspec://models/<model>/retrain`. A pipeline with a train step
for the model is scheduled on its cron OR that Asset; a drift step gets a small companion task
that emits the Asset event only when drift was found (it is skipped otherwise, so no event), with
the reasons and the drift window in the event's extra. Asset-triggered runs have no data interval
in Airflow 3; their window is the drift window the event carries.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from dagspec.plan import Plan

if TYPE_CHECKING:
    from airflow.sdk import Asset

log = logging.getLogger("dagspec")
TRAINING_KINDS = ("train", "evaluate", "promote")


def retrain_asset(model: str) -> Asset:
    from airflow.sdk import Asset

    return Asset(name=f"dagspec_retrain_{model}", uri=f"dagspec://models/{model}/retrain", group="dagspec-models")


def retrain_condition(plan: Plan) -> Any:
    """The retrain Assets of the models this pipeline trains (any of them), or None when it trains none."""
    models = plan.models_trained
    if not models:
        return None
    from airflow.sdk import AssetAny

    return retrain_asset(models[0]) if len(models) == 1 else AssetAny(*(retrain_asset(m) for m in models))


class RetrainSignalOperator(BaseOperator):
    """Emits the model's retrain Asset event when the drift (or monitor) step upstream found drift (or a breach);
    skipped otherwise."""

    ui_color = "#fdecea"

    def __init__(self, *, drift_task: str, model: str, **kwargs: Any) -> None:
        super().__init__(outlets=[retrain_asset(model)], **kwargs)
        self.drift_task = drift_task
        self.model = model

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        result = context["ti"].xcom_pull(task_ids=self.drift_task) or {}
        # A drift step says "drifted"; a monitor step "retrain_requested" (a breach with on_breach retrain).
        if not (result.get("drifted") or result.get("retrain_requested")):
            raise AirflowSkipException(f"no drift or breach in {self.model!r}: nothing to retrain")
        extra = {"model": self.model, "dag_id": context["dag"].dag_id, "reasons": result.get("reasons", []),
                 "window_start": result["window"][0], "window_end": result["window"][1],
                 "champion_version": result.get("champion_version"), "record": result.get("record")}
        context["outlet_events"][retrain_asset(self.model)].extra = extra
        log.info("retrain of %s requested: %s (event on %s)", self.model, "; ".join(extra["reasons"]),
                 retrain_asset(self.model).uri)
        return extra


def attach_ml(dag: Any, plan: Plan, tasks: dict[str, Any]) -> None:
    """Add a retrain signal after each drift or monitor step that asks for one."""
    for planned in plan.retrain_signals:
        step_id, model = planned.id, planned.step.model
        task_id = f"{step_id}_retrain" if f"{step_id}_retrain" not in tasks else f"{step_id}__retrain"
        signal = RetrainSignalOperator(task_id=task_id, dag=dag, drift_task=step_id, model=model,
                                       doc_md=f"Triggers the pipelines that train **{model}** when "
                                              f"`{step_id}` finds drift (skipped otherwise).")
        tasks[step_id] >> signal
