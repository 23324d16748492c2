"""Run one transform test case: its given rows become the step's inputs, the transform stage itself renders and
runs the SQL (stages/transform.run_transform, nothing rendered twice), and the rows it wrote are compared.

Every table the stage writes goes to a scratch schema: in a DuckDB file in a temp folder (embedded), or in
the definition's PostgreSQL, DuckLake or BigQuery warehouse in a schema (on BigQuery a dataset) made for the case and
dropped after it, so a test never touches a table a pipeline owns. A DuckLake warehouse (its catalog and data path)
gets the same scratch schema.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.runner import window_of_day
from dagspec.secrets import scrub_known
from dagspec.spec.history_inputs import HistoryInput
from dagspec.spec.model import Pipeline, TableRef, TransformStep
from dagspec.spec.transform_tests import TransformCase
from dagspec.sql import qualified
from dagspec.stages.context import RunContext
from dagspec.stages.history import relation_name
from dagspec.stages.transform import run_transform
from dagspec.transform_tests.compare import Diff, compare
from dagspec.transform_tests.history_rows import history_rows
from dagspec.transform_tests.values import TableError, arrow_table
from dagspec.warehouse.contract import ArrowSource, Session, Warehouse
from dagspec.windows import Batch

SCRATCH = "dagspec_test"
# Where --warehouse runs the cases in a scratch schema of the warehouse itself (dropped after each case).
REAL_WAREHOUSES = ("postgres", "postgresql", "redshift_pg", "ducklake", "bigquery", "google_cloud_platform", "gcpbigquery")


@dataclass
class CaseResult:
    name: str
    step: str
    diff: Diff | None = None
    error: str | None = None  # the case could not run: a bad cell, the SQL failed in the warehouse
    where: str = ""  # JSON path of what the error is about, when it is in the test file
    fix: str = ""
    sql: list[str] = field(default_factory=list)  # each statement the stage sent, as the warehouse got it
    dialect: str = "duckdb"

    @property
    def passed(self) -> bool:
        return self.error is None and self.diff is not None and self.diff.passed


class _Recording:
    """The warehouse session the stage writes through, keeping the SQL it sends and, for an ordered case,
    the query's rows in the order it returns them (a table keeps no order)."""

    loads_chunks = False  # a case runs one batch, and each statement it sends is recorded on its own

    def __init__(self, inner: Session, sent: list[str], ordered: list[pa.Table] | None):
        self.inner, self.sent, self.ordered = inner, sent, ordered
        self.dialect = inner.dialect

    def _ran(self, select_sql: str, params: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={_literal(v)}" for k, v in sorted(params.items()))
        self.sent.append(select_sql + (f"\n-- parameters: {shown}" if shown else ""))
        if self.ordered is not None:
            self.ordered.append(self.inner.arrow(select_sql, params).read_all())

    def expose(self, name: str, relation: ArrowSource) -> str:
        return self.inner.expose(name, relation)

    def expose_batch(self, name: str, schema: str, table: str, batch_date: date) -> str:
        return self.inner.expose_batch(name, schema, table, batch_date)

    def expose_history(self, name: str, schema: str, table: str, first: date | None, last: date) -> str:
        return self.inner.expose_history(name, schema, table, first, last)

    def columns(self, select_sql: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        return self.inner.columns(select_sql, params)

    def table_columns(self, schema: str, table: str) -> list[tuple[str, str]] | None:
        return self.inner.table_columns(schema, table)

    def replace_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                      keep: int | None = None, after: Sequence[str] = ()) -> int:
        count = self.inner.replace_batch(schema, table, batch_date, select_sql, params, keep, after)
        self._ran(select_sql, params)
        return count

    def merge_batch(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any],
                    key: list[str]) -> int:
        count = self.inner.merge_batch(schema, table, batch_date, select_sql, params, key)
        self._ran(select_sql, params)
        return count

    def replace_table(self, schema: str, table: str, batch_date: date, select_sql: str, params: dict[str, Any]) -> int:
        count = self.inner.replace_table(schema, table, batch_date, select_sql, params)
        self._ran(select_sql, params)
        return count

    def create_view(self, schema: str, table: str, select_sql: str) -> None:
        self.inner.create_view(schema, table, select_sql)
        self._ran(select_sql, {})

    def arrow(self, select_sql: str, params: dict[str, Any], batch_rows: int = 100_000) -> pa.RecordBatchReader:
        return self.inner.arrow(select_sql, params, batch_rows)


def _literal(value: object) -> str:
    return repr(value.isoformat(sep=" ") if isinstance(value, datetime) else
                value.isoformat() if isinstance(value, date) else value)


class _RecordingWarehouse:
    def __init__(self, inner: Warehouse, ordered: bool):
        self.inner, self.dialect = inner, inner.dialect
        self.sent: list[str] = []
        self.ordered: list[pa.Table] | None = [] if ordered else None

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.inner.session() as session:
            yield _Recording(session, self.sent, self.ordered)


@dataclass
class CaseContext(RunContext):
    """The stage's context for a case: inputs are the given rows, outputs are tables of the scratch schema."""

    given: dict[str, pa.Table] = field(default_factory=dict)
    scratch: str = SCRATCH
    case_warehouse: Warehouse | None = None

    @property
    def warehouse(self) -> Warehouse:  # type: ignore[override]
        assert self.case_warehouse is not None
        return self.case_warehouse

    def output_table(self, step_id: str) -> TableRef:
        return TableRef.model_validate({"schema": self.scratch, "table": step_id})

    def expose(self, session: Session, step_id: str, batch: Batch, name: str | None = None) -> str:
        return session.expose(name or f"__ref_{step_id}", self.given[step_id])

    def expose_history(self, session: Session, step: TransformStep, entry: HistoryInput, batch: Batch) -> str:
        """The given rows of a history input, cut to the batch's range as a run cuts the published table."""
        return session.expose(relation_name(step, entry), history_rows(self.given[entry.name], entry, batch))


def run_case(pipeline: Pipeline, case: TransformCase, sql_root: Path, warehouse: Warehouse,
             scratch: str = SCRATCH) -> CaseResult:
    """One case on ``warehouse``, its tables in schema ``scratch`` (which the caller drops, when it must)."""
    step = pipeline.step(case.step)
    assert isinstance(step, TransformStep)  # load_tests checked it
    result = CaseResult(case.name, step.id)
    try:
        given = {sid: arrow_table(rows, f"$.given.{sid}") for sid, rows in case.given.items()}
    except TableError as exc:
        result.error, result.where, result.fix = exc.message, exc.where, exc.fix
        return result
    if case.params:
        pipeline = pipeline.model_copy(update={"params": {**pipeline.params, **case.params}})
    day = case.batch_date or pipeline.start_date
    recording = _RecordingWarehouse(warehouse, case.expect.ordered)
    ctx = CaseContext(pipeline, window_of_day(pipeline, day), sql_root=sql_root, given=given, scratch=scratch,
                      case_warehouse=recording, log=logging.getLogger("dagspec.transform_tests"))
    try:
        if step.materialization == "view":
            _inputs_as_tables(warehouse, ctx, given, day)
        run_transform(ctx, step)
        if recording.ordered is not None:
            produced = pa.concat_tables(recording.ordered) if recording.ordered else pa.table({})
        else:
            produced = _read(warehouse, scratch, step.id)
    except Exception as exc:  # the SQL's own error is the finding: show it, go on with the next case
        result.error = scrub_known(f"{type(exc).__name__}: {exc}".strip(), [])
    result.sql, result.dialect = recording.sent, warehouse.dialect
    if result.error is None:
        result.diff = compare(produced, case.expect)
    return result


def _inputs_as_tables(warehouse: Warehouse, ctx: CaseContext, given: dict[str, pa.Table], day: date) -> None:
    """A view reads whole warehouse tables: the given rows become them (with their batch_date, as the
    stage writes every table)."""
    with warehouse.session() as session:
        for step_id, table in given.items():
            relation = session.expose(f"__given_{step_id}", table)
            session.replace_table(ctx.scratch, step_id, day, f"SELECT * FROM {relation}", {})


def _read(warehouse: Warehouse, schema: str, table: str) -> pa.Table:
    with warehouse.session() as session:
        rows = session.arrow(f"SELECT * FROM {qualified(schema, table, session.dialect)}", {}).read_all()
    return rows.drop_columns(["batch_date"]) if "batch_date" in rows.column_names else rows


def embedded_cases(pipeline: Pipeline, cases: list[TransformCase], sql_root: Path) -> Iterator[CaseResult]:
    """Each case in a DuckDB file of its own in a temp folder, removed afterwards."""
    from dagspec.warehouse.duckdb import DuckDBWarehouse

    with tempfile.TemporaryDirectory(prefix="dagspec-test-") as folder:
        for i, case in enumerate(cases):
            yield run_case(pipeline, case, sql_root, DuckDBWarehouse(Path(folder) / f"case{i}.duckdb"))


def warehouse_cases(pipeline: Pipeline, cases: list[TransformCase], sql_root: Path,
                    info: ConnectionInfo) -> Iterator[CaseResult]:
    """Each case in the definition's PostgreSQL, DuckLake or BigQuery warehouse, in a schema (dataset) of its own
    dropped after it, whatever happened: on DuckLake that schema's files are the lake's, in its catalog and data
    path."""
    from dagspec.warehouse import open_warehouse

    warehouse = open_warehouse(info)
    for case in cases:
        scratch = f"{SCRATCH}_{uuid.uuid4().hex[:12]}"
        try:
            yield run_case(pipeline, case, sql_root, warehouse, scratch)
        finally:
            _drop_scratch(warehouse, scratch)


def _drop_scratch(warehouse: Warehouse, scratch: str) -> None:
    with warehouse.session() as session:
        session.drop_schema(scratch)
