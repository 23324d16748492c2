"""Validate: Great Expectations checks on a step's batch; a failed 'fail' expectation stops the run.

Where the checks run (the definition's run_on):
- batch (default): the batch is scanned by embedded DuckDB (staged Parquet read in place, a
  transform's batch where it lives), the common expectations computed in SQL, results in GX's
  own format; the rest go to GX's pandas engine with only the columns they read.
- warehouse: on a PostgreSQL warehouse, GX's SQL engine runs the suite inside PostgreSQL (quarantine selects
  the failing rows again there, by one INSERT ... SELECT). On a BigQuery
  warehouse the same SQL evaluator runs inside BigQuery (its DuckDB SQL transpiled by sqlglot, values bound
  as query parameters): only aggregates and a few sample values come back, never the batch; expectations it
  does not compute get only their columns, checked by GX's pandas engine; quarantine is a query in BigQuery.
With on_fail 'drop_rows' the first pass over the input's batch also writes its passing rows (validate_rows),
and a second pass judges those: what flows on, and is pinned, is the passing rows (validate_rows.py).
GX is imported inside the task, never at DAG parse time (it costs seconds to import).
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.alerts_runs import deliver, observed, wants, warn_event
from dagspec.spec.model import ExtractStep, TableRef, ValidateStep
from dagspec.spec.suites import Check, SuiteError, step_checks
from dagspec.stages.context import RunContext, StepFailed
from dagspec.stages.validate_report import short, summary, write_reports
from dagspec.stages.validate_rows import SetAside, clear_passed
from dagspec.stages.validate_scan import ScanConnection
from dagspec.stages.validate_sql import DUCKDB_MEMORY, IN_WAREHOUSE, in_warehouse, refuse_absent_columns, run_pandas
from dagspec.utc import LIBPQ_OPTIONS, duckdb_utc
from dagspec.windows import Batch

if TYPE_CHECKING:

    from duckdb import DuckDBPyConnection

    from dagspec.warehouse.contract import Session
    from dagspec.warehouse.postgres import PostgresSession



class ValidationFailed(StepFailed):
    pass


@dataclass(frozen=True)
class Source:
    """The batch a pass of the checks reads: the input's own (the first pass), or, with on_fail 'drop_rows',
    its passing rows once they are written (the second pass, for the checks of the whole batch)."""

    table: TableRef
    staged: bool  # store partitions (an extract's), else a warehouse table
    aside: SetAside | None  # the first pass: where its failing (and passing) rows go
    scan: ScanConnection | None = None  # the run's one connection for staged partitions read in place


def run_validate(ctx: RunContext, step: ValidateStep) -> dict[str, Any]:
    try:
        checks = step_checks(step, ctx.suites_root)
    except SuiteError as exc:
        raise StepFailed(str(exc)) from None
    outcome: dict[str, Any] = {}
    failures: list[str] = []
    suite_name = f"{ctx.pipeline.dag_id}.{step.id}"
    staged = isinstance(ctx.pipeline.step(step.input), ExtractStep)
    table = ctx.output_table(step.input)
    passed_to = ctx.plan.step(step.id).output  # on_fail 'drop_rows': the passing rows' table
    warnings: list[tuple[str, str, str]] = []  # (batch_date, what failed and what it saw, report link)
    with closing(ScanConnection(DUCKDB_MEMORY)) as scan:
        for batch in ctx.batches:
            _check_batch(ctx, step, batch, checks, suite_name, table, staged, passed_to, scan, outcome, failures,
                         warnings)
    if staged and len(ctx.batches) > 1:  # the check records, written atomically, reach the disk before the step ends
        ctx.store.sync_records()
    if failures:
        raise ValidationFailed("validation failed, nothing downstream will publish: " + "; ".join(failures))
    if warnings and wants(ctx.pipeline, "warn"):  # one alert for the step's run, every batch's warnings in it
        dates = sorted({d for d, _, _ in warnings})
        window = f"window {ctx.window.start:%Y-%m-%d} .. {ctx.window.end:%Y-%m-%d}"
        deliver(ctx.pipeline, warn_event(ctx.pipeline, step.id, window, dates, [line for _, line, _ in warnings],
                                         warnings[0][2]), ctx.resolver)
    return outcome


def _check_batch(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
                 table: TableRef, staged: bool, passed_to: TableRef | None, scan: ScanConnection,
                 outcome: dict[str, Any], failures: list[str], warnings: list[tuple[str, str, str]]) -> None:
    version = staged and ctx.store.manifest_digest(table.schema_, table.table, batch.key)
    aside = SetAside(step, batch, passed_to, staged, staged_from=table if staged else None) \
        if step.quarantine or passed_to else None
    results, rows, engine = _evaluate(ctx, step, batch, checks, suite_name, Source(table, staged, aside, scan))
    verdict = results["results"]
    if passed_to is not None:
        verdict = _second_pass(ctx, step, batch, checks, suite_name, results, aside)
    blocking = [r for r in verdict if not r["success"] and r["severity"] == "fail"]
    stopped = results.get("drop_rows", {}).get("stopped")
    warned = [r for r in results["results"] if not r["success"] and r["severity"] == "warn"]
    passed = not blocking and not stopped
    json_path, html_path = write_reports(ctx.reports_root, ctx.pipeline.dag_id, step.id, batch, rows, results,
                                         passed)
    if staged:
        _pin(ctx, step, table, batch, version, passed, aside)
    elif passed_to is not None and not passed:
        clear_passed(ctx, passed_to, batch)
    ctx.log.info("validate %s batch_date=%s rows=%d (engine: %s)\n%s", step.id, batch.key, rows, engine,
                 summary(results))
    if passed_to is not None:
        _log_drops(ctx, step, batch, results["drop_rows"])
    ctx.log.info("validation report: %s (result JSON: %s)", ctx.report_link(html_path), ctx.report_link(json_path))
    for r in warned:
        ctx.log.warning("expectation %s failed with severity warn: recorded, the run continues", short(r))
        warnings.append((batch.batch_date.isoformat(), f"{short(r)} batch_date={batch.batch_date}: {observed(r)}",
                         ctx.report_link(html_path)))
    if blocking or stopped:
        failures.append(f"batch_date={batch.key}: " + ", ".join(
            [short(r) for r in blocking] + ([stopped] if stopped else [])))
    outcome[batch.key.label] = {
        "success": passed, "warnings": len(warned), "warned": [short(r) for r in warned],
        "report": str(html_path), "result": str(json_path),
        **({"rows": rows} if passed_to is None else _counts(results["drop_rows"])),
    }


def _second_pass(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
                 results: dict[str, Any], aside: SetAside) -> list[dict[str, Any]]:
    """on_fail 'drop_rows': the verdict comes from the checks on the passing rows (a dropping check passes
    there; a table or aggregate check is judged on what flows on). Adds the counts to the result JSON."""
    drop = results["drop_rows"] = aside.counts()
    if aside.exceeded:
        drop["stopped"] = aside.limit_message()
        return results["results"]
    if not aside.dropped:  # the passing rows are the batch: the first pass's verdicts stand
        return results["results"]
    again, _, _ = _evaluate(ctx, step, batch, checks, suite_name, Source(aside.passed, aside.staged, None))
    drop["passing_rows_results"] = again["results"]
    return again["results"]


def _counts(drop: dict[str, Any]) -> dict[str, Any]:
    return {"rows": drop["rows_checked"], "rows_passed": drop["rows_passed"], "rows_dropped": drop["rows_dropped"],
            "dropped_by": drop["dropped_by"]}


def _log_drops(ctx: RunContext, step: ValidateStep, batch: Batch, drop: dict[str, Any]) -> None:
    by = ", ".join(f"{name}: {n}" for name, n in drop["dropped_by"].items()) or "none"
    ctx.log.info("validate %s batch_date=%s drop_rows: rows checked=%d passed=%d dropped=%d (failing rows by check: "
                 "%s)%s", step.id, batch.key, drop["rows_checked"], drop["rows_passed"], drop["rows_dropped"],
                 by, f"; STOPPED: {drop['stopped']}" if drop.get("stopped") else "")
    if drop.get("passing_rows_results") is not None:
        ctx.log.info("validate %s: the checks again on the passing rows\n%s", step.id,
                     summary({"results": drop["passing_rows_results"]}))


def _pin(ctx: RunContext, step: ValidateStep, table: TableRef, batch: Batch, version: str, passed: bool,
         aside: SetAside | None) -> None:
    """Record which version of the staged partition was checked: readers downstream take only that one.
    The version is read before and after the checks, so the verdict belongs to exactly it (a warn-only
    failure still pins: that version was checked). With on_fail 'drop_rows' the version recorded is that of
    the passing rows' partition this step wrote, read again after the second pass for the same reason."""
    now = ctx.store.manifest_digest(table.schema_, table.table, batch.key)
    if now != version:
        raise StepFailed(f"partition {table.qualified} batch_date={batch.key} was replaced while {step.id} "
                         "was checking it (another run or definition writing it?); run the checks again")
    if aside is not None and aside.passed is not None:
        table, version = aside.passed, aside.passed_digest
        if version is None:  # nothing passed on (max_dropped): no version of the passing rows is good
            passed, version = False, ctx.store.manifest_digest(table.schema_, table.table, batch.key) or ""
        elif ctx.store.manifest_digest(table.schema_, table.table, batch.key) != version:
            raise StepFailed(f"partition {table.qualified} batch_date={batch.key} was replaced while "
                             f"{step.id} was checking it (another run writing it?); run the checks again")
    ctx.store.record_check(ctx.pipeline.dag_id, step.id, batch.key, table.schema_, table.table, version,
                           passed, durable=len(ctx.batches) == 1)


def _evaluate(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str, src: Source
              ) -> tuple[dict[str, Any], int, str]:
    """Returns (GX suite result dict with type/severity/index on each result, row count, engine used)."""
    with ExitStack() as stack:
        session = None
        if not src.staged:
            session = stack.enter_context(ctx.warehouse.session())
        if step.run_on == "warehouse" and session is not None and session.dialect == "postgres":
            results, rows = _gx_in_postgres(ctx, step, batch, checks, suite_name, session, src)
            engine = "great_expectations SQL engine in PostgreSQL"
        elif step.run_on == "warehouse" and session is not None and session.dialect in IN_WAREHOUSE:
            results, rows = in_warehouse(ctx, step, batch, checks, suite_name, session, src.table, src.aside)
            engine = IN_WAREHOUSE[session.dialect]
        else:
            if step.run_on == "warehouse" and src.staged:
                ctx.log.info("validate %s: %s is staged Parquet, checked in place with DuckDB", step.id, step.input)
            con, relation = _duckdb_relation(ctx, step, batch, session, stack, src)
            results, rows = _in_duckdb(ctx, step, checks, suite_name, con, relation, session, src)
            engine = "DuckDB (GX result format)"
        return _suite_result(results, suite_name, batch, engine), rows, engine


def _duckdb_relation(ctx: RunContext, step: ValidateStep, batch: Batch, session: Session | None, stack: ExitStack,
                     src: Source) -> tuple[DuckDBPyConnection, str]:
    table = src.table
    if session is not None and session.dialect == "duckdb":
        # The transform's batch is already in the DuckDB warehouse: check it where it is.
        return session.con, session.expose_batch("__dagspec_checked", table.schema_, table.table, batch.key)
    if session is None:
        part = ctx.store.partition(table.schema_, table.table, batch.key)
        if all(Path(f).is_file() for f in part.files):
            files = ", ".join("'" + f.replace("'", "''") + "'" for f in part.files)
            # A quarantine or drop_rows pass writes tables on its connection: it keeps one of its own.
            con = src.scan.get() if src.scan is not None and src.aside is None else _own_connection(stack)
            # hive_partitioning off: the batch_date=... folder is the store's layout, not a column of the batch.
            return con, f"read_parquet([{files}], hive_partitioning = false)"
    con = _own_connection(stack)
    if session is None:
        con.register("_dagspec_batch", ctx.store.dataset(table.schema_, table.table, [batch.key]))
        return con, "_dagspec_batch"
    # A transform's batch in another warehouse: streamed into local DuckDB (spills to disk, never pandas).
    rel = session.expose_batch("__dagspec_checked", table.schema_, table.table, batch.key)
    reader = session.arrow(f"SELECT * FROM {rel}", {})
    con.register("_dagspec_reader", reader)
    con.execute("CREATE TABLE _dagspec_batch AS SELECT * FROM _dagspec_reader")
    con.unregister("_dagspec_reader")
    return con, "_dagspec_batch"


def _own_connection(stack: ExitStack) -> DuckDBPyConnection:
    import duckdb

    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dagspec-validate-"))
    con = duckdb_utc(duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": tmp, "threads": 2}))
    stack.callback(con.close)
    return con


def _in_duckdb(ctx: RunContext, step: ValidateStep, checks: list[Check], suite_name: str, con: DuckDBPyConnection,
               relation: str, session: Session | None, src: Source) -> tuple[list[dict[str, Any]], int]:
    from dagspec.checks.sql_engine import Evaluator

    ev = Evaluator(con, relation)
    mine = [c for c in checks if ev.handles(c)]
    theirs = [c for c in checks if not ev.handles(c)]
    by_index = dict(zip((c.index for c in mine), ev.run(mine)))
    if theirs:
        refuse_absent_columns(step, theirs, ev.columns)
        cols = sorted({col for c in theirs for col in (c.columns() or ev.columns)} & set(ev.columns))
        ctx.log.info("validate %s: %s run by GX's pandas engine on column(s) %s", step.id,
                     ", ".join(c.type for c in theirs), ", ".join(cols))
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in cols) or "*"
        df = con.execute(f"SELECT {select} FROM {relation}").fetch_df()
        by_index.update(zip((c.index for c in theirs), run_pandas(step, df, theirs, suite_name, ev.date_columns())))
        del df
    results = [by_index[c.index] for c in checks]
    for c, r in zip(checks, results):
        r["type"], r["severity"], r["index"] = c.type, c.severity, c.index
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    if src.aside is not None:
        src.aside.take(ctx, ev, [(c, by_index[c.index]) for c in mine], session)
    return results, rows


def _gx_in_postgres(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
                    session: PostgresSession, src: Source) -> tuple[list[dict[str, Any]], int]:
    from sqlalchemy.engine import URL

    from dagspec.checks import gx_engine
    from dagspec.sql import qualified, quote
    from dagspec.warehouse.batch_columns import BatchColumns

    info = ctx.resolver(ctx.pipeline.warehouse.conn_id)
    table = src.table
    added = BatchColumns.of(batch.key).names
    cols = [c for c, _ in session.table_columns(table.schema_, table.table) or [] if c not in added]
    if not cols:
        raise StepFailed(f"warehouse table {table.qualified} does not exist: did step {step.input!r} run?")
    refuse_absent_columns(step, checks, cols, parser="great_expectations")
    query = (f"SELECT {', '.join(quote(c, 'postgres') for c in cols)} FROM "
             f"{qualified(table.schema_, table.table, 'postgres')} "
             f"WHERE {BatchColumns.of(batch.key).literal_where()}")
    url = URL.create("postgresql+psycopg", info.login, info.password, info.host or "127.0.0.1", info.port or 5432,
                     info.schema, query={"options": LIBPQ_OPTIONS}).render_as_string(hide_password=False)
    try:
        results = gx_engine.run_sql(url, query, checks, suite_name)
    except Exception as exc:
        # Connection refused, too many clients, a column gone: the run failed, the data was not judged.
        raise StepFailed(info.scrub(
            f"validate {step.id}: GX could not compute the checks in warehouse connection {info.conn_id!r} "
            f"(postgres), an infrastructure error, not a failed expectation: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}")) from None
    for c, r in zip(checks, results):
        r["type"], r["severity"], r["index"] = c.type, c.severity, c.index
    rows = session.execute(f"SELECT count(*) FROM ({query}) AS q")[0][0]
    if src.aside is not None:
        # GX's SQL engine returns verdicts, not rows: the rows it failed are selected again inside PostgreSQL.
        from dagspec.checks.sql_engine import Evaluator, supported
        from dagspec.checks.warehouse_sql import PostgresBatchConnection

        con = PostgresBatchConnection(session, table.schema_, table.table, cols, batch.key)
        src.aside.take(ctx, Evaluator(con, con.relation), [(c, r) for c, r in zip(checks, results) if supported(c)],
                       session)
    return results, rows


def _suite_result(results: list[dict], suite_name: str, batch: Batch, engine: str) -> dict[str, Any]:
    ok = sum(1 for r in results if r["success"])
    return {
        "success": all(r["success"] for r in results),
        "results": results,
        "suite_name": suite_name,
        "suite_parameters": {},
        "statistics": {"evaluated_expectations": len(results), "successful_expectations": ok,
                       "unsuccessful_expectations": len(results) - ok,
                       "success_percent": ok / len(results) * 100 if results else None},
        "meta": {"batch_date": batch.key.label, "engine": engine, "great_expectations_version": _gx_version()},
        "id": None,
    }


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


