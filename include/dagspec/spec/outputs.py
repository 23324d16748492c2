"""What one definition writes: every place a step's rows land, with the JSON path that says so.

Two steps (of one definition or of two) writing one place overwrite each other's batches, so
this list is what the overlap checks compare (spec/folder.py across a folder, `overlaps` within
one file). Names are compared case-insensitively: DuckDB, PostgreSQL (unquoted) and BigQuery
datasets ignore case, and refusing a pair that a case-sensitive store would keep apart is the
safe side. The plan (dagspec.plan) reads each step's places from here; so do the Asset URIs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from dagspec.spec.errors import json_path
from dagspec.spec.model import ExtractStep, Pipeline, PublishStep, ScoreStep, StepBase, TableRef, TransformStep, ValidateStep

WORK_SCHEMA = "dagspec_work"  # where a transform without a target keeps its table


def work_table_name(dag_id: str, step_id: str) -> str:
    """A transform's default warehouse table. Lossy (case, '-', '.', 63 characters): the folder
    checks refuse definitions whose names meet here."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{dag_id}__{step_id}")
    return name[:63] if name[0].isalpha() or name[0] == "_" else f"_{name}"[:63]


@dataclass(frozen=True)
class Place:
    """One place a step writes rows to."""

    namespace: str  # "store", "warehouse", "bigquery" or "gsheets"
    authority: str  # the store's or warehouse's connection id, the BigQuery project, the spreadsheet id
    schema: str  # schema or dataset ("" for a worksheet)
    table: str  # table or worksheet
    what: str  # as a person reads it: "staged table", "transform table", ...
    loc: tuple[str, ...]  # where the step says so, under the step ((): by default)
    asset: bool  # published as an Airflow Asset another definition can be scheduled on

    @property
    def uri(self) -> str:
        """The Asset URI: connections by id, never by host or secret."""
        if self.namespace == "gsheets":
            return f"gsheets://{self.authority}/{quote(self.table, safe='')}"
        scheme = {"store": "dagspec-store", "warehouse": "dagspec-warehouse", "bigquery": "bigquery"}[self.namespace]
        return f"{scheme}://{self.authority}/{self.schema}/{self.table}"


LABELS = {"store": "store", "warehouse": "warehouse", "bigquery": "BigQuery"}  # a worksheet holds no table to compare


@dataclass(frozen=True)
class Output:
    place: tuple[str, str, str, str]  # (namespace, conn_id, schema, table), lower-case: the comparison key
    what: str  # as a person reads it: "staged table raw.orders in store dagspec_store"
    loc: tuple[str | int, ...]  # where the definition says so

    @property
    def path(self) -> str:
        return json_path(self.loc)


def writes(pipeline: Pipeline) -> list[Output]:
    """Every table the pipeline writes rows to, one entry per step and target."""
    return [Output((p.namespace, p.authority.lower(), p.schema.lower(), p.table.lower()),
                   f"{p.what} {p.schema}.{p.table} in {LABELS[p.namespace]} {p.authority}", ("steps", i, *p.loc))
            for i, step in enumerate(pipeline.steps) for p in writes_of(pipeline, step) if p.namespace in LABELS]


def output_of(pipeline: Pipeline, step: StepBase) -> TableRef | None:
    """What a step reading `step` reads: staged partitions, a transform's table, scores (table, else export)."""
    if isinstance(step, ExtractStep):
        return step.target
    if isinstance(step, TransformStep):
        return step.target or TableRef(schema=WORK_SCHEMA, table=work_table_name(pipeline.dag_id, step.id))
    if isinstance(step, ScoreStep):
        return step.output.table or step.output.export
    return None


def writes_of(pipeline: Pipeline, step: StepBase) -> tuple[Place, ...]:
    """Every place one step writes to. Needs no step order: the overlap checks ask before cycles are refused."""
    store, wh = pipeline.store.conn_id, pipeline.warehouse.conn_id
    if isinstance(step, ExtractStep):
        return (Place("store", store, step.target.schema_, step.target.table, "staged table", ("target",), False),)
    if isinstance(step, TransformStep):
        table = output_of(pipeline, step)
        return (Place("warehouse", wh, table.schema_, table.table, "transform table",
                      ("target",) if step.target else (), True),)
    if isinstance(step, PublishStep):
        return _publish_writes(step, store, wh)
    if isinstance(step, ScoreStep):
        out = step.output
        found = [Place("warehouse", wh, out.table.schema_, out.table.table, "score table", ("output", "table"),
                       False)] if out.table is not None else []
        if out.export is not None:
            found.append(Place("store", store, out.export.schema_, out.export.table, "exported scores",
                               ("output", "export"), False))
        return tuple(found)
    if isinstance(step, ValidateStep):
        found = []
        if step.quarantine is not None:
            q = step.quarantine
            found.append(Place("warehouse", wh, q.schema_, q.table, "quarantine table", ("quarantine",), False))
        passed = passed_table(pipeline, step)
        if passed is not None:
            staged = isinstance(_step_or_none(pipeline, step.input), ExtractStep)
            found.append(Place("store" if staged else "warehouse", store if staged else wh, passed.schema_,
                               passed.table, "passing rows table", ("on_fail",), False))
        return tuple(found)
    return ()


def _step_or_none(pipeline: Pipeline, step_id: str) -> StepBase | None:
    return next((s for s in pipeline.steps if s.id == step_id), None)


def passed_table(pipeline: Pipeline, step: StepBase) -> TableRef | None:
    """Where a validate step with on_fail 'drop_rows' keeps the passing rows of its input's batches: beside the
    input's own table (staged partitions or a warehouse table), which stays as it was written."""
    if not isinstance(step, ValidateStep) or step.on_fail != "drop_rows":
        return None
    source = _step_or_none(pipeline, step.input)
    table = output_of(pipeline, source) if source is not None else None
    if table is None:
        return None
    return TableRef(schema=table.schema_, table=f"{table.table[:55]}__passed")


def drop_rows_problems(pipeline: Pipeline) -> list[tuple[tuple[str | int, ...], str, str]]:
    """A step reading a batch through a drop_rows check reads its passing rows, and only that check's record
    says which version: another validate step of the same input would pin another table's version."""
    problems = []
    for i, step in enumerate(pipeline.steps):
        if not isinstance(step, ValidateStep) or step.on_fail != "drop_rows":
            continue
        others = [s.id for s in pipeline.steps if isinstance(s, ValidateStep) and s.input == step.input and s is not step]
        if others:
            problems.append((("steps", i, "on_fail"),
                             f"validate steps {', '.join(others)} also check {step.input!r}: a step with on_fail "
                             "'drop_rows' must be the only validate step of its input",
                             f"move their expectations into {step.id!r} (each keeps its severity)"))
    return problems


def _publish_writes(step: PublishStep, store: str, wh: str) -> tuple[Place, ...]:
    found = []
    if step.table is not None:
        found.append(Place("warehouse", wh, step.table.schema_, step.table.table, "published table", ("table",),
                           True))
    if step.export is not None:
        dest = step.export.target or step.table
        found.append(Place("store", step.export.conn_id or store, dest.schema_, dest.table, "exported table",
                           ("export",), True))
    if step.bigquery is not None:
        bq = step.bigquery
        found.append(Place("bigquery", bq.project or bq.conn_id, bq.dataset, bq.table, "BigQuery table",
                           ("bigquery",), True))
    if step.sheet is not None:
        found.append(Place("gsheets", step.sheet.spreadsheet_id, "", step.sheet.worksheet, "worksheet", ("sheet",),
                           True))
    return tuple(found)


def overlaps(pipeline: Pipeline) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Two steps of one definition writing one place: (loc, message, fix) at the second of each pair."""
    first: dict[tuple[str, str, str, str], Output] = {}
    problems = []
    for out in writes(pipeline):
        seen = first.setdefault(out.place, out)
        if seen is not out and pipeline.steps[seen.loc[1]].id != pipeline.steps[out.loc[1]].id:  # else: a copied step
            problems.append((out.loc, f"writes {out.what}, which {seen.path} also writes",
                             "give each step its own target table"))
    return problems
