"""run_on 'warehouse' on BigQuery and Redshift: the SQL evaluator's queries run inside the warehouse over the
batch (its DuckDB SQL transpiled by sqlglot to the warehouse's dialect, values bound as query parameters).
Only aggregates and a few sample values come back, never the batch; expectations the evaluator does not
compute there get only their columns, read out and checked by GX's pandas engine; quarantine and the
passing rows of drop_rows are one INSERT ... SELECT there.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from dagspec.spec.model import TableRef, ValidateStep
from dagspec.spec.suites import Check, absent_condition_columns
from dagspec.stages.context import RunContext, StepFailed
from dagspec.utc import duckdb_utc
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd
    import pyarrow as pa

    from dagspec.checks.warehouse_sql import BatchConnection
    from dagspec.stages.validate_rows import SetAside
    from dagspec.warehouse.contract import Session

DUCKDB_MEMORY = "256MB"
# The warehouses whose checks run in their own SQL, and the engine name the report shows for each.
IN_WAREHOUSE = {"bigquery": "BigQuery SQL (GX result format)", "redshift": "Redshift SQL (GX result format)"}


def batch_connection(session: Session, table_schema: str, table: str, batch_date: Any) -> BatchConnection:
    """The warehouse's BatchConnection over one batch of `table_schema.table`."""
    from dagspec.checks.warehouse_sql import BigQueryConnection, RedshiftBatchConnection

    if session.dialect == "bigquery":
        return BigQueryConnection(session, session.project, table_schema, table, batch_date)
    cols = [c for c, _ in session.table_columns(table_schema, table) or [] if c != "batch_date"]
    return RedshiftBatchConnection(session, table_schema, table, cols, batch_date)


def in_warehouse(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
                 session: Session, table: TableRef, aside: SetAside | None) -> tuple[list[dict[str, Any]], int]:
    """The SQL evaluator's queries run inside the warehouse over the batch's rows; nothing is copied out."""
    from dagspec.checks.sql_engine import Evaluator
    from dagspec.checks.warehouse_sql import runs_in

    name = IN_WAREHOUSE[session.dialect].split(" SQL")[0]
    if session.table_columns(table.schema_, table.table) is None:
        raise StepFailed(f"warehouse table {table.qualified} does not exist in {name}: did step {step.input!r} run?")
    try:
        con = batch_connection(session, table.schema_, table.table, batch.batch_date)
        ev = Evaluator(con, con.relation)
        mine = [c for c in checks if runs_in(c, session.dialect) and ev.handles(c)]
        theirs = [c for c in checks if c not in mine]
        by_index = dict(zip((c.index for c in mine), ev.run(mine)))
        rows = con.execute(f"SELECT count(*) FROM {con.relation}").fetchone()[0]
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise StepFailed(f"validate {step.id}: {name} could not compute the checks on {table.qualified}: "
                         f"{type(exc).__name__}: {message}") from None
    ctx.log.info("validate %s: %d expectation(s) computed inside %s in %d queries over %s "
                 "(batch_date=%s); the batch was not copied out", step.id, len(mine), name, len(con.statements),
                 table.qualified, batch.key)
    if theirs:
        refuse_absent_columns(step, theirs, ev.columns)
        cols = sorted({col for c in theirs for col in (c.columns() or ev.columns)} & set(ev.columns))
        ctx.log.info("validate %s: %s run by GX's pandas engine on column(s) %s (only these are read from %s)",
                     step.id, ", ".join(c.type for c in theirs), ", ".join(cols), name)
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in cols) or "*"
        sql, params = con.translate(f"SELECT {select} FROM {con.relation}")
        df = arrow_to_df(session.arrow(sql, params))
        by_index.update(zip((c.index for c in theirs), run_pandas(step, df, theirs, suite_name, ev.date_columns())))
        del df
    results = [by_index[c.index] for c in checks]
    for c, r in zip(checks, results):
        r["type"], r["severity"], r["index"] = c.type, c.severity, c.index
    if aside is not None:
        aside.take(ctx, ev, [(c, by_index[c.index]) for c in mine], session)
    return results, rows


def refuse_absent_columns(step: ValidateStep, checks: list[Check], columns: list[str], parser: str = "pandas") -> None:
    """A row_condition naming a column the batch lacks (or written for the other GX engine) stops the step before
    GX runs, saying where it is written."""
    problem = absent_condition_columns(checks, columns, parser)
    if problem:
        raise StepFailed(f"validate {step.id}: {problem}")


def run_pandas(step: ValidateStep, df: pd.DataFrame, checks: list[Check], suite_name: str,
               date_columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    from dagspec.checks import gx_engine

    try:
        return gx_engine.run_pandas(df, checks, suite_name, date_columns)
    except gx_engine.CheckError as exc:
        raise StepFailed(f"validate {step.id}: GX's pandas engine could not compute the checks, an error of the "
                         f"run, not a failed expectation: {exc}") from None


def arrow_to_df(reader: pa.RecordBatchReader) -> pd.DataFrame:
    """A pandas frame typed as on the DuckDB path (DuckDB's fetch_df), from a few columns' Arrow stream."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="dagspec-validate-") as tmp:
        con = duckdb_utc(duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": tmp, "threads": 2}))
        try:
            con.register("_dagspec_columns", reader)
            return con.execute("SELECT * FROM _dagspec_columns").fetch_df()
        finally:
            con.close()
