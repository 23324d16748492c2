"""The plan of one definition: its steps in run order, what each waits for and reads, where each writes.

Every consumer (the stages, the Airflow DAG and its Assets, freshness, the runner, the overlap checks)
asks the plan, so "where does a step write" has one answer. Built from a validated Pipeline alone: no
connection lookup, no Airflow, O(steps) work, since the dag-processor builds it for every definition
on every parse. A Pipeline is mutable, so a plan is built fresh and held by whoever asks (it is cheap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dagspec.spec.graph import topological, upstream
from dagspec.spec.history_checks import history_uris
from dagspec.spec.ml_steps import ML_KINDS
from dagspec.spec.model import (
    DriftStep,
    ExtractStep,
    MonitorStep,
    Pipeline,
    ScoreStep,
    StepBase,
    TableRef,
    TrainStep,
    ValidateStep,
)
from dagspec.spec.outputs import Place, output_of, passed_table, writes_of

CORE_KINDS = ("extract", "validate", "transform", "publish")
STEP_KINDS = CORE_KINDS + ML_KINDS

@dataclass(frozen=True)
class PlannedStep:
    id: str
    kind: str
    step: StepBase
    upstream: tuple[str, ...]  # what it waits for: its `after` (default: the step before it) and what it reads
    reads: tuple[str, ...]  # the steps whose output it reads
    output: TableRef | None  # where its batches are for a step reading it
    output_in_store: bool  # that output is Parquet partitions in the store (else a warehouse table)
    writes: tuple[Place, ...]
    inlet_uris: tuple[str, ...] = ()  # Assets of the published tables it reads whole (a transform's history)

    @property
    def asset_uris(self) -> tuple[str, ...]:
        return tuple(p.uri for p in self.writes if p.asset)

    @property
    def is_ml(self) -> bool:
        return self.kind in ML_KINDS


@dataclass(frozen=True)
class Plan:
    dag_id: str
    steps: tuple[PlannedStep, ...]  # in run order: every step after all it waits for, ties in definition order
    by_id: dict[str, PlannedStep] = field(repr=False, compare=False)  # in definition order

    @property
    def order(self) -> list[str]:
        return [s.id for s in self.steps]

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(s.kind for s in self.steps)

    @property
    def has_ml(self) -> bool:
        return any(s.is_ml for s in self.steps)

    @property
    def models_trained(self) -> tuple[str, ...]:
        """The models this pipeline trains, sorted: their retrain Assets schedule it."""
        return tuple(sorted({s.step.model for s in self.by_id.values() if isinstance(s.step, TrainStep)}))

    @property
    def retrain_signals(self) -> tuple[PlannedStep, ...]:
        """The drift and monitor steps that ask for a retrain when they find drift or a breach, in definition order."""
        return tuple(s for s in self.by_id.values() if (isinstance(s.step, DriftStep) and s.step.retrain)
                     or (isinstance(s.step, MonitorStep) and s.step.on_breach == "retrain"))

    def step(self, step_id: str) -> PlannedStep:
        return self.by_id[step_id]

    def upstream(self) -> dict[str, list[str]]:
        """step id -> ids it waits for, in definition order."""
        return {s.id: list(s.upstream) for s in self.by_id.values()}

    def output(self, step_id: str) -> TableRef | None:
        return self.by_id[step_id].output

    def ancestors(self, step_id: str) -> set[str]:
        """Every step `step_id` waits for, directly or not."""
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            current = todo.pop()
            if current in self.by_id:
                fresh = [u for u in self.by_id[current].upstream if u not in seen]
                seen.update(fresh)
                todo.extend(fresh)
        return seen

    def validations_of(self, step_id: str) -> list[str]:
        """The validate steps checking `step_id`'s output, in definition order."""
        return [s.id for s in self.by_id.values() if isinstance(s.step, ValidateStep) and s.step.input == step_id]

    def drop_rows_check(self, step_id: str) -> PlannedStep | None:
        """The validate step with on_fail 'drop_rows' of `step_id`'s output (its `output` holds the passing rows)."""
        return next((self.by_id[v] for v in self.validations_of(step_id)
                     if self.by_id[v].step.on_fail == "drop_rows"), None)

    def store_tables(self) -> list[tuple[str, str]]:
        """(schema, table) of what extracts stage, drop_rows checks pass on (`<table>__passed`) and publish steps
        export to the store, without repeats: freshness and backfill see every partition a run writes there."""
        tables = [(p.schema, p.table) for s in self.by_id.values() if s.kind in ("extract", "validate", "publish")
                  for p in s.writes if p.namespace == "store"]
        return list(dict.fromkeys(tables))


def plan_of(pipeline: Pipeline) -> Plan:
    """The plan of a pipeline (ValueError when its steps wait for each other in a cycle)."""
    deps = upstream(pipeline)
    by_id = {s.id: planned_step(pipeline, s, tuple(deps[s.id])) for s in pipeline.steps}
    return Plan(pipeline.dag_id, tuple(by_id[i] for i in topological(pipeline, deps)), by_id)


def planned_step(pipeline: Pipeline, step: StepBase, waits_for: tuple[str, ...]) -> PlannedStep:
    output = output_of(pipeline, step) or passed_table(pipeline, step)
    in_store = isinstance(step, ExtractStep) or (isinstance(step, ScoreStep) and step.output.table is None) or (
        isinstance(step, ValidateStep) and output is not None and isinstance(pipeline.step(step.input), ExtractStep))
    return PlannedStep(step.id, step.kind, step, waits_for, tuple(dict.fromkeys(step.refs())), output, in_store,
                       writes_of(pipeline, step), history_uris(pipeline, step))
