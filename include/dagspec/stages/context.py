"""What a stage needs to run one step for one window: the pipeline, its batches, connections, store, warehouse."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dagspec.connections import Resolver, env_resolver
from dagspec.errors import StepFailed  # noqa: F401  (re-exported for stages)
from dagspec.paths import data_home, sql_dir
from dagspec.spec.model import ExtractStep, Pipeline, TableRef, TransformStep
from dagspec.spec.outputs import WORK_SCHEMA, work_table_name  # noqa: F401  (re-exported)
from dagspec.store import Store
from dagspec.windows import Batch, Window


@dataclass
class RunContext:
    pipeline: Pipeline
    window: Window
    resolver: Resolver = env_resolver
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("dagspec"))
    sql_root: Path = field(default_factory=sql_dir)
    reports_root: Path = field(default_factory=lambda: data_home() / "reports")

    @cached_property
    def batches(self) -> list[Batch]:
        return self.window.batches(self.pipeline.batch_days)

    @cached_property
    def store(self) -> Store:
        return Store.from_connection(self.resolver(self.pipeline.store.conn_id))

    @cached_property
    def warehouse(self):
        from dagspec.warehouse.base import open_warehouse

        return open_warehouse(self.resolver(self.pipeline.warehouse.conn_id))

    def output_table(self, step_id: str) -> TableRef:
        """Where a step's batches live: an extract's staged partitions, a transform's warehouse table."""
        step = self.pipeline.step(step_id)
        if isinstance(step, ExtractStep):
            return step.target
        if isinstance(step, TransformStep):
            return step.target or TableRef(schema=WORK_SCHEMA, table=work_table_name(self.pipeline.dag_id, step.id))
        if step.kind == "score":  # its warehouse table, else its Parquet partitions in the store
            return step.output.table or step.output.export
        raise StepFailed(f"step {step_id!r} ({step.kind}) has no output to read")

    def expose(self, session, step_id: str, batch: Batch) -> str:
        """Make one batch of a step's output queryable in the warehouse session; returns the relation name."""
        step = self.pipeline.step(step_id)
        table = self.output_table(step_id)
        name = f"__ref_{step_id}"
        if isinstance(step, ExtractStep) or (step.kind == "score" and step.output.table is None):
            return session.expose(name, self.store.dataset(table.schema_, table.table, [batch.batch_date]))
        return session.expose_batch(name, table.schema_, table.table, batch.batch_date)

