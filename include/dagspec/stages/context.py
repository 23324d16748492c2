"""What a stage needs to run one step for one window: the pipeline, its batches, connections, store, warehouse."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from dagspec.connections import Resolver, env_resolver
from dagspec.errors import StepFailed
from dagspec.lookback import with_gaps
from dagspec.partitions import Key, as_key
from dagspec.paths import data_home, expectations_dir, sql_dir
from dagspec.plan import Plan, PlannedStep, plan_of
from dagspec.spec.history_inputs import HistoryInput
from dagspec.spec.model import Pipeline, TableRef, TransformStep
from dagspec.stages.full_refresh import snapshot_batches
from dagspec.store import PartitionChanged, Store
from dagspec.windows import Batch, Window

if TYPE_CHECKING:
    import pyarrow.dataset as pads

    from dagspec.warehouse.contract import Session, Warehouse

if TYPE_CHECKING:
    from dagspec.ml.registry import Registry


@dataclass
class RunContext:
    pipeline: Pipeline
    window: Window
    resolver: Resolver = env_resolver
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("dagspec"))
    sql_root: Path = field(default_factory=sql_dir)
    suites_root: Path = field(default_factory=expectations_dir)
    reports_root: Path = field(default_factory=lambda: data_home() / "reports")
    # Where the Airflow UI serves reports_root (the dagspec plugin), so a task log links a page any browser
    # can open; None outside Airflow (the CLI prints file:// links).
    reports_url: str | None = None
    step_id: str | None = None  # the step this context runs: its reads of checked partitions are pinned
    # Earlier batches this run heals (dagspec.lookback), computed once for the whole run by its caller.
    gaps: list[Batch] = field(default_factory=list)

    @cached_property
    def batches(self) -> list[Batch]:
        own = snapshot_batches(self.pipeline, self.pipeline.batches_of(self.window))
        return with_gaps(own, self.gaps) if self.gaps else own

    @cached_property
    def plan(self) -> Plan:
        return plan_of(self.pipeline)

    @cached_property
    def store(self) -> Store:
        return Store.from_connection(self.resolver(self.pipeline.store.conn_id))

    @cached_property
    def warehouse(self) -> Warehouse:
        from dagspec.warehouse import open_warehouse

        return open_warehouse(self.resolver(self.pipeline.warehouse.conn_id), self.resolver)

    @cached_property
    def model_registry(self) -> Registry:
        """One registry client for the step: opening the registry's store costs a migration check."""
        from dagspec.ml.registry import Registry

        return Registry.open(self.resolver)

    def report_link(self, path: Path) -> str:
        """A report's address for a log line: under the UI's reports route when there is one, else file://."""
        try:
            rel = path.resolve().relative_to(self.reports_root.resolve())
        except ValueError:
            return path.resolve().as_uri()
        return f"{self.reports_url.rstrip('/')}/{rel.as_posix()}" if self.reports_url else path.resolve().as_uri()

    def close(self) -> None:
        """The step has ended: release what it held in the store."""
        if "store" in self.__dict__:
            self.store.release()

    def output_table(self, step_id: str) -> TableRef:
        """Where a step's batches live: an extract's staged partitions, a transform's warehouse table, scores."""
        table = self.plan.output(step_id)
        if table is None:
            raise StepFailed(f"step {step_id!r} ({self.plan.step(step_id).kind}) has no output to read")
        return table

    def expose(self, session: Session, step_id: str, batch: Batch, name: str | None = None) -> str:
        """Make one batch of a step's output queryable in the warehouse session; returns the relation name.
        `name`: a name of its own, for a caller that keeps several batches exposed at once."""
        planned = self.plan.step(step_id)
        table = self.output_table(step_id)
        name = name or f"__ref_{step_id}"
        if planned.kind == "extract":
            return session.expose(name, self.staged(step_id, [batch.key]))
        dropping = self.dropping_check(step_id)
        if dropping is not None:  # a warehouse table's passing rows, written by that check alone
            return session.expose_batch(name, dropping.output.schema_, dropping.output.table, batch.key)
        if planned.output_in_store:
            return session.expose(name, self.store.dataset(table.schema_, table.table, [batch.key]))
        return session.expose_batch(name, table.schema_, table.table, batch.key)

    def expose_history(self, session: Session, step: TransformStep, entry: HistoryInput, batch: Batch) -> str:
        """A history input's published batches up to `batch` in the warehouse session; returns the relation."""
        from dagspec.stages.history import expose_history

        return expose_history(self.pipeline, session, step, entry, batch, self.log)

    def checked_by(self, step_id: str) -> list[str]:
        """The validate steps of `step_id`'s output that the running step waits for, directly or not."""
        if self.step_id is None:
            return []
        waits_for = self.plan.ancestors(self.step_id)
        return [v for v in self.plan.validations_of(step_id) if v in waits_for]

    def dropping_check(self, step_id: str) -> PlannedStep | None:
        """The on_fail 'drop_rows' check of `step_id` the running step waits for: it reads that check's passing
        rows instead of the whole batch."""
        found = self.plan.drop_rows_check(step_id)
        return found if found is not None and found.id in self.checked_by(step_id) else None

    def reads_from(self, step_id: str) -> TableRef:
        """The table the running step reads `step_id`'s rows from: the passing rows of its drop_rows check when it
        waits for that check, else the step's output."""
        dropping = self.dropping_check(step_id)
        return dropping.output if dropping is not None else self.output_table(step_id)

    def staged(self, step_id: str, dates: list[Key]) -> pads.Dataset:
        """An extract's staged partitions for `dates`, as one dataset. Downstream of a validate step of it, each
        date of this run's batches is read only in the version that step checked (its record in the store, so
        any task process can tell): a partition rewritten since (another run, another definition staging the
        same table) is refused, never read. Older dates (a model's lookback) are read as they are. Behind an
        on_fail 'drop_rows' check, every date is read from its passing rows, pinned the same way."""
        table = self.reads_from(step_id)
        checks = self.checked_by(step_id)
        ours = {b.key for b in self.batches}
        pinned = {d: self._pin(step_id, checks, d) for d in dates if checks and as_key(d) in ours}
        try:
            return self.store.dataset(table.schema_, table.table, dates, pinned=pinned)
        except PartitionChanged as exc:
            day = next(d for d in dates if pinned.get(d) == exc.expected)
            raise StepFailed(f"partition {table.qualified} {as_key(day).segment} changed since {' and '.join(checks)} "
                             f"validated it; re-run from {step_id} (nothing was read from it by {self.step_id})"
                             ) from None

    def _pin(self, step_id: str, checks: list[str], day: Key) -> str:
        """The one version of the date's partition every check of it recorded, else StepFailed."""
        where = f"partition {self.output_table(step_id).qualified} {as_key(day).segment}"
        pinned = None
        for check in checks:
            record = self.store.checked(self.pipeline.dag_id, check, day)
            if record is None:
                raise StepFailed(f"{where}: no record that {check} validated it (looked for "
                                 f"{self.store.check_record_uri(self.pipeline.dag_id, check, day)}); "
                                 f"run {check} before {self.step_id}")
            if not record.get("passed"):
                raise StepFailed(f"{where}: {check} failed on it; nothing downstream reads it")
            if pinned not in (None, record["manifest_sha256"]):
                raise StepFailed(f"{where} changed between the checks of this run; re-run from {step_id}")
            pinned = record["manifest_sha256"]
        return pinned

