"""The Airflow side of the self-healing lookback (dagspec.lookback): two tasks around the steps.

`dagspec-lookback` runs first: it reads the lookback (the definition's, unless an Airflow Variable
overrides it), finds the gaps once and hands them to every step through XCom, so the steps of one run
agree even while the run writes the partitions that made them gaps. `dagspec-outcome` runs last,
whatever happened (trigger rule all_done): it records success or failure for every partition the run
processed, gaps included, in the store, where the next run's lookback reads it, and fails the run when
a step did not succeed. Their ids hold a '-', which step ids cannot, so they never meet a step.

Only a definition with a lookback above 0 gets them: one without keeps exactly its DAG of old, and a
Variable is read at run time only, never while the DAG is parsed.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import BaseOperator

from dagspec.plan import Plan

LOOKBACK_TASK = "dagspec-lookback"
OUTCOME_TASK = "dagspec-outcome"
DONE_KEY = "dagspec_done"
ALL = "dagspec_lookback"  # Variable for every definition of the deployment

log = logging.getLogger("dagspec")


def variable_names(dag_id: str) -> tuple[str, str]:
    """The Variables that override a definition's lookback, the first found wins."""
    return f"{ALL}__{dag_id}", ALL


class LookbackOperator(BaseOperator):
    """Finds the run's gaps once; its XCom (a list of batches) is what every step of the run processes too."""

    ui_color = "#fff4e0"

    def __init__(self, *, definition: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.definition = definition

    def execute(self, context: Any) -> list[dict[str, str]]:
        from dagspec.airflow.assets import run_window
        from dagspec.airflow.connections import airflow_resolver
        from dagspec.lookback import batch_to_json, gap_batches
        from dagspec.spec.discovery import load_cached
        from dagspec.store import Store
        from dagspec.windows import Window, utc

        pipeline = load_cached(self.definition)
        run_type = context["dag_run"].run_type
        if str(getattr(run_type, "value", run_type)) == "backfill":
            log.info("a backfill names its own dates: no lookback")
            return []
        days, where = lookback_of(pipeline.dag_id, pipeline.lookback)
        own = Window(*(utc(t) for t in run_window(context)))
        day = pipeline.batches_of(own)[0].batch_date
        store = Store.from_connection(airflow_resolver(pipeline.store.conn_id))
        gaps = gap_batches(pipeline, store, own, day, days)
        log.info("lookback %d %s (%s) before %s: %s", days,
                 "interval(s)" if pipeline.grain_cron else "day(s)", where, own.start if pipeline.grain_cron else day,
                 ", ".join(g.key.label for g in gaps) or "no gaps")
        return [batch_to_json(g) for g in gaps]


def lookback_of(dag_id: str, definition_value: int) -> tuple[int, str]:
    """(days, where they came from): a Variable of this deployment, else the definition."""
    from airflow.sdk import Variable

    from dagspec.lookback import lookback_value

    for name in variable_names(dag_id):
        raw = Variable.get(name, default=None)
        if raw is not None:
            return lookback_value(raw, f"Airflow Variable {name!r}"), f"Variable {name}"
    return definition_value, "definition"


class OutcomeOperator(BaseOperator):
    """Records how the run went for each batch_date it processed; fails when a step did not succeed."""

    ui_color = "#eef7ee"

    def __init__(self, *, definition: str, step_ids: list[str], **kwargs: Any) -> None:
        super().__init__(trigger_rule="all_done", retries=0, **kwargs)
        self.definition = definition
        self.step_ids = step_ids

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from dagspec.airflow.assets import run_window
        from dagspec.airflow.connections import airflow_resolver
        from dagspec.lookback import with_gaps
        from dagspec.spec.discovery import load_cached
        from dagspec.store import Store
        from dagspec.windows import Window, utc

        pipeline = load_cached(self.definition)
        ti = context["ti"]
        steps = step_states(pipeline, {s: ti.xcom_pull(task_ids=s, key=DONE_KEY) for s in self.step_ids})
        state = "success" if set(steps.values()) <= {"success", "skipped"} else "failed"
        own = pipeline.batches_of(Window(*(utc(t) for t in run_window(context))))
        batches = with_gaps(own, shared_gaps(context))
        store = Store.from_connection(airflow_resolver(pipeline.store.conn_id))
        failed = [s for s, v in steps.items() if v == "failed"]
        error = f"step(s) {', '.join(failed)} did not succeed in Airflow run {context.get('run_id')}" if failed else None
        for batch in batches:
            # by partition: an hourly run's outcome is its hour's, not its whole day's
            store.record_run(pipeline.dag_id, batch.key, state, error, run_id=context.get("run_id"),
                             run_date=own[0].batch_date.isoformat(), steps=steps)
        dates = [b.key.label for b in batches]
        log.info("recorded %s for %s", state, ", ".join(dates))
        if failed:
            raise AirflowFailException(f"{error}; recorded as failed for {', '.join(dates)} (the next run's "
                                       "lookback heals them)")
        return {"state": state, "batch_dates": dates}


def shared_gaps(context: Any) -> list:
    """The gaps the run's lookback task found (none when it found none or did not run)."""
    from dagspec.lookback import batch_from_json

    return [batch_from_json(b) for b in context["ti"].xcom_pull(task_ids=LOOKBACK_TASK) or []]


def mark_done(context: Any, *, skipped: bool = False) -> None:
    """This step succeeded (or had nothing to do) in this try: what the outcome task counts (a retry clears its
    XCom first)."""
    context["ti"].xcom_push(key=DONE_KEY, value="skipped" if skipped else True)


def step_states(pipeline: Any, marks: dict[str, Any]) -> dict[str, str]:
    """success / skipped / failed per step from the marks its tasks left. A step with no mark whose upstream
    skipped was skipped by Airflow along with it; with no mark otherwise it failed (or never ran)."""
    from dagspec.plan import plan_of

    plan = plan_of(pipeline)
    upstream = plan.upstream()
    states: dict[str, str] = {}
    for step_id in [s for s in plan.order if s in marks] + [s for s in marks if s not in plan.order]:
        mark = marks[step_id]
        if mark == "skipped" or (not mark and any(states.get(u) == "skipped" for u in upstream.get(step_id, []))):
            states[step_id] = "skipped"
        else:
            states[step_id] = "success" if mark else "failed"
    return states


def attach_lookback(dag: Any, definition: str, plan: Plan, tasks: dict[str, Any], callbacks: dict[str, Any]) -> None:
    """The lookback task before the first steps, the outcome task after every step. The lookback task alerts
    like a step (a bad Variable stops every run); the outcome task does not (the failed step already did)."""
    first = LookbackOperator(task_id=LOOKBACK_TASK, dag=dag, definition=definition, **callbacks,
                             doc_md="Finds the earlier dates this run also processes (missing or failed ones).")
    last = OutcomeOperator(task_id=OUTCOME_TASK, dag=dag, definition=definition, step_ids=list(tasks),
                           doc_md="Records the run's outcome per batch_date, for the next run's lookback.")
    for planned in plan.steps:
        task = tasks[planned.id]
        if not planned.upstream:
            first.downstream_task_ids.add(planned.id)
            task.upstream_task_ids.add(LOOKBACK_TASK)
        task.downstream_task_ids.add(OUTCOME_TASK)
        last.upstream_task_ids.add(planned.id)
