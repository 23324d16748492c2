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
GX is imported inside the task, never at DAG parse time (it costs seconds to import).
"""

from __future__ import annotations

import html
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.secrets import scrub_known
from dagspec.spec.model import ExtractStep, TableRef, ValidateStep
from dagspec.spec.suites import Check, SuiteError, step_checks
from dagspec.stages.context import RunContext, StepFailed
from dagspec.utc import LIBPQ_OPTIONS, duckdb_utc
from dagspec.windows import Batch

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date

    import pandas as pd
    import pyarrow as pa
    from duckdb import DuckDBPyConnection

    from dagspec.checks.sql_engine import Evaluator
    from dagspec.warehouse.bigquery import BigQuerySession
    from dagspec.warehouse.contract import Session
    from dagspec.warehouse.postgres import PostgresSession

DUCKDB_MEMORY = "256MB"
BIGQUERY_ENGINE = "BigQuery SQL (GX result format)"


class ValidationFailed(StepFailed):
    pass


def run_validate(ctx: RunContext, step: ValidateStep) -> dict[str, Any]:
    try:
        checks = step_checks(step, ctx.suites_root)
    except SuiteError as exc:
        raise StepFailed(str(exc)) from None
    outcome: dict[str, Any] = {}
    failures: list[str] = []
    suite_name = f"{ctx.pipeline.dag_id}.{step.id}"
    staged = ctx.output_table(step.input) if isinstance(ctx.pipeline.step(step.input), ExtractStep) else None
    for batch in ctx.batches:
        version = staged and ctx.store.manifest_digest(staged.schema_, staged.table, batch.batch_date)
        results, rows, engine = _evaluate(ctx, step, batch, checks, suite_name)
        json_path, html_path = _write_reports(ctx, step, batch, rows, results)
        blocking = [r for r in results["results"] if not r["success"] and r["severity"] == "fail"]
        warned = [r for r in results["results"] if not r["success"] and r["severity"] == "warn"]
        if staged is not None:
            _pin(ctx, step, staged, batch, version, passed=not blocking)
        ctx.log.info("validate %s batch_date=%s rows=%d (engine: %s)\n%s", step.id, batch.batch_date, rows, engine,
                     summary(results))
        ctx.log.info("validation report: %s (result JSON: %s)", ctx.report_link(html_path), ctx.report_link(json_path))
        for r in warned:
            ctx.log.warning("expectation %s failed with severity warn: recorded, the run continues", _short(r))
        if blocking:
            failures.append(f"batch_date={batch.batch_date}: " + ", ".join(_short(r) for r in blocking))
        outcome[batch.batch_date.isoformat()] = {
            "success": not blocking, "warnings": len(warned), "warned": [_short(r) for r in warned],
            "report": str(html_path), "result": str(json_path),
        }
    if failures:
        raise ValidationFailed("validation failed, nothing downstream will publish: " + "; ".join(failures))
    return outcome


def _pin(ctx: RunContext, step: ValidateStep, table: TableRef, batch: Batch, version: str, passed: bool) -> None:
    """Record which version of the staged partition was checked: readers downstream take only that one.
    The version is read before and after the checks, so the verdict belongs to exactly it (a warn-only
    failure still pins: that version was checked)."""
    now = ctx.store.manifest_digest(table.schema_, table.table, batch.batch_date)
    if now != version:
        raise StepFailed(f"partition {table.qualified} batch_date={batch.batch_date} was replaced while {step.id} "
                         "was checking it (another run or definition writing it?); run the checks again")
    ctx.store.record_check(ctx.pipeline.dag_id, step.id, batch.batch_date, table.schema_, table.table, version,
                           passed)


def _evaluate(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str
              ) -> tuple[dict[str, Any], int, str]:
    """Returns (GX suite result dict with type/severity/index on each result, row count, engine used)."""
    is_extract = isinstance(ctx.pipeline.step(step.input), ExtractStep)
    with ExitStack() as stack:
        session = None
        if not is_extract:
            session = stack.enter_context(ctx.warehouse.session())
        if step.run_on == "warehouse" and session is not None and session.dialect == "postgres":
            results, rows = _gx_in_postgres(ctx, step, batch, checks, suite_name, session)
            engine = "great_expectations SQL engine in PostgreSQL"
        elif step.run_on == "warehouse" and session is not None and session.dialect == "bigquery":
            results, rows = _in_bigquery(ctx, step, batch, checks, suite_name, session)
            engine = BIGQUERY_ENGINE
        else:
            if step.run_on == "warehouse" and is_extract:
                ctx.log.info("validate %s: %s is staged Parquet, checked in place with DuckDB", step.id, step.input)
            con, relation = _duckdb_relation(ctx, step, batch, session, stack)
            results, rows = _in_duckdb(ctx, step, batch, checks, suite_name, con, relation, session)
            engine = "DuckDB (GX result format)"
        return _suite_result(results, suite_name, batch, engine), rows, engine


def _duckdb_relation(ctx: RunContext, step: ValidateStep, batch: Batch, session: Session | None, stack: ExitStack
                     ) -> tuple[DuckDBPyConnection, str]:
    import duckdb

    table = ctx.output_table(step.input)
    if session is not None and session.dialect == "duckdb":
        # The transform's batch is already in the DuckDB warehouse: check it where it is.
        from dagspec.sql import qualified

        rel = (f"(SELECT * EXCLUDE (batch_date) FROM {qualified(table.schema_, table.table, 'duckdb')} "
               f"WHERE batch_date = DATE '{batch.batch_date.isoformat()}')")
        return session.con, rel
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="dagspec-validate-"))
    con = duckdb_utc(duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": tmp, "threads": 2}))
    stack.callback(con.close)
    if session is None:
        part = ctx.store.partition(table.schema_, table.table, batch.batch_date)
        if all(Path(f).is_file() for f in part.files):
            files = ", ".join("'" + f.replace("'", "''") + "'" for f in part.files)
            # hive_partitioning off: the batch_date=... folder is the store's layout, not a column of the batch.
            return con, f"read_parquet([{files}], hive_partitioning = false)"
        con.register("_dagspec_batch", ctx.store.dataset(table.schema_, table.table, [batch.batch_date]))
        return con, "_dagspec_batch"
    # A transform's batch in another warehouse: streamed into local DuckDB (spills to disk, never pandas).
    rel = ctx.expose(session, step.input, batch)
    reader = session.arrow(f"SELECT * FROM {rel}", {})
    con.register("_dagspec_reader", reader)
    con.execute("CREATE TABLE _dagspec_batch AS SELECT * FROM _dagspec_reader")
    con.unregister("_dagspec_reader")
    return con, "_dagspec_batch"


def _in_duckdb(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
               con: DuckDBPyConnection, relation: str, session: Session | None) -> tuple[list[dict[str, Any]], int]:
    from dagspec.checks.sql_engine import Evaluator

    ev = Evaluator(con, relation)
    mine = [c for c in checks if ev.handles(c)]
    theirs = [c for c in checks if not ev.handles(c)]
    by_index = dict(zip((c.index for c in mine), ev.run(mine)))
    if theirs:
        cols = sorted({col for c in theirs for col in (c.columns() or ev.columns)} & set(ev.columns))
        ctx.log.info("validate %s: %s run by GX's pandas engine on column(s) %s", step.id,
                     ", ".join(c.type for c in theirs), ", ".join(cols))
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in cols) or "*"
        df = con.execute(f"SELECT {select} FROM {relation}").fetch_df()
        by_index.update(zip((c.index for c in theirs), _run_pandas(step, df, theirs, suite_name, ev.date_columns())))
        del df
    results = [by_index[c.index] for c in checks]
    for c, r in zip(checks, results):
        r["type"], r["severity"], r["index"] = c.type, c.severity, c.index
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    if step.quarantine is not None:
        _quarantine(ctx, step, batch, ev, [(c, by_index[c.index]) for c in mine], session)
    return results, rows


def _in_bigquery(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
                 session: BigQuerySession) -> tuple[list[dict[str, Any]], int]:
    """The SQL evaluator's queries run inside BigQuery over the batch's partition; nothing is copied out."""
    from dagspec.checks.sql_engine import Evaluator
    from dagspec.checks.warehouse_sql import BigQueryConnection, supported_in_bigquery

    table = ctx.output_table(step.input)
    if session.table_columns(table.schema_, table.table) is None:
        raise StepFailed(f"warehouse table {table.qualified} does not exist in BigQuery: did step {step.input!r} run?")
    try:
        con = BigQueryConnection(session, session.project, table.schema_, table.table, batch.batch_date)
        ev = Evaluator(con, con.relation)
        mine = [c for c in checks if supported_in_bigquery(c) and ev.handles(c)]
        theirs = [c for c in checks if c not in mine]
        by_index = dict(zip((c.index for c in mine), ev.run(mine)))
        rows = con.execute(f"SELECT count(*) FROM {con.relation}").fetchone()[0]
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise StepFailed(f"validate {step.id}: BigQuery could not compute the checks on {table.qualified}: "
                         f"{type(exc).__name__}: {message}") from None
    ctx.log.info("validate %s: %d expectation(s) computed inside BigQuery in %d queries over %s "
                 "(batch_date=%s); the batch was not copied out", step.id, len(mine), len(con.statements),
                 table.qualified, batch.batch_date)
    if theirs:
        cols = sorted({col for c in theirs for col in (c.columns() or ev.columns)} & set(ev.columns))
        ctx.log.info("validate %s: %s run by GX's pandas engine on column(s) %s (only these are read from BigQuery)",
                     step.id, ", ".join(c.type for c in theirs), ", ".join(cols))
        select = ", ".join('"' + c.replace('"', '""') + '"' for c in cols) or "*"
        sql, params = con.translate(f"SELECT {select} FROM {con.relation}")
        df = _arrow_to_df(session.arrow(sql, params))
        by_index.update(zip((c.index for c in theirs), _run_pandas(step, df, theirs, suite_name, ev.date_columns())))
        del df
    results = [by_index[c.index] for c in checks]
    for c, r in zip(checks, results):
        r["type"], r["severity"], r["index"] = c.type, c.severity, c.index
    if step.quarantine is not None:
        _quarantine(ctx, step, batch, ev, [(c, by_index[c.index]) for c in mine], session)
    return results, rows


def _run_pandas(step: ValidateStep, df: pd.DataFrame, checks: list[Check], suite_name: str,
                date_columns: Iterable[str] = ()) -> list[dict[str, Any]]:
    from dagspec.checks import gx_engine

    try:
        return gx_engine.run_pandas(df, checks, suite_name, date_columns)
    except gx_engine.CheckError as exc:
        raise StepFailed(f"validate {step.id}: GX's pandas engine could not compute the checks, an error of the "
                         f"run, not a failed expectation: {exc}") from None


def _arrow_to_df(reader: pa.RecordBatchReader) -> pd.DataFrame:
    """A pandas frame typed as on the DuckDB path (DuckDB's fetch_df), from a few columns' Arrow stream."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="dagspec-validate-") as tmp:
        con = duckdb_utc(duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": tmp, "threads": 2}))
        try:
            con.register("_dagspec_columns", reader)
            return con.execute("SELECT * FROM _dagspec_columns").fetch_df()
        finally:
            con.close()


def _quarantine(ctx: RunContext, step: ValidateStep, batch: Batch, ev: Evaluator, checked: list[tuple[Check, dict]],
                session: Session | None) -> None:
    """Failing rows (with the checks they failed) replace this batch in the quarantine table."""
    from dagspec.checks.warehouse_sql import BatchConnection

    target = step.quarantine
    got = ev.failing_rows_sql(checked)
    sql, params = got if got else (f"SELECT *, CAST(NULL AS VARCHAR) AS failed_expectations FROM {ev.relation} "
                                   "WHERE FALSE", [])
    if isinstance(ev.con, BatchConnection):
        # Checked in the warehouse: the failing rows go from the batch to the quarantine table by one query there.
        select, values = ev.con.translate(sql, params)
        count = session.replace_batch(target.schema_, target.table, batch.batch_date, select, values)
        ctx.log.info("validate %s: %d failing row(s) -> quarantine %s (batch_date=%s), selected inside %s",
                     step.id, count, target.qualified, batch.batch_date, ev.con.warehouse)
        return
    reader = ev.con.execute(sql, params).fetch_record_batch(50_000)
    with ExitStack() as stack:
        if session is None:
            session = stack.enter_context(ctx.warehouse.session())
        if session.dialect == "duckdb" and session.con is ev.con:
            # Same DuckDB connection: materialise first, the warehouse write reads it back.
            table = reader.read_all()
            rel = session.expose("__quarantine", table)
        else:
            rel = session.expose("__quarantine", reader)
        count = session.replace_batch(target.schema_, target.table, batch.batch_date, f"SELECT * FROM {rel}", {})
    ctx.log.info("validate %s: %d failing row(s) -> quarantine %s (batch_date=%s)", step.id, count,
                 target.qualified, batch.batch_date)


def _gx_in_postgres(ctx: RunContext, step: ValidateStep, batch: Batch, checks: list[Check], suite_name: str,
                    session: PostgresSession) -> tuple[list[dict[str, Any]], int]:
    from sqlalchemy.engine import URL

    from dagspec.checks import gx_engine
    from dagspec.sql import qualified, quote

    info = ctx.resolver(ctx.pipeline.warehouse.conn_id)
    table = ctx.output_table(step.input)
    cols = [c for c, _ in session.table_columns(table.schema_, table.table) or [] if c != "batch_date"]
    if not cols:
        raise StepFailed(f"warehouse table {table.qualified} does not exist: did step {step.input!r} run?")
    query = (f"SELECT {', '.join(quote(c, 'postgres') for c in cols)} FROM "
             f"{qualified(table.schema_, table.table, 'postgres')} "
             f"WHERE batch_date = DATE '{batch.batch_date.isoformat()}'")
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
    if step.quarantine is not None:
        # GX's SQL engine returns verdicts, not rows: the rows it failed are selected again inside PostgreSQL.
        from dagspec.checks.sql_engine import Evaluator, supported
        from dagspec.checks.warehouse_sql import PostgresBatchConnection

        con = PostgresBatchConnection(session, table.schema_, table.table, cols, batch.batch_date)
        _quarantine(ctx, step, batch, Evaluator(con, con.relation),
                    [(c, r) for c, r in zip(checks, results) if supported(c)], session)
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
        "meta": {"batch_date": batch.batch_date.isoformat(), "engine": engine, "great_expectations_version": _gx_version()},
        "id": None,
    }


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


def _short(r: dict[str, Any]) -> str:
    col = r["expectation_config"]["kwargs"].get("column")
    return f"{r['type']}({col})" if col else r["type"]


def summary(results: dict[str, Any]) -> str:
    lines = [f"{'result':6} {'severity':8} {'expectation':58} {'unexpected':>10}  observed"]
    for r in results["results"]:
        res = r.get("result") or {}
        observed = res.get("observed_value", res.get("partial_unexpected_list", ""))
        if (r.get("exception_info") or {}).get("raised_exception"):
            observed = "error: " + str(r["exception_info"].get("exception_message"))
        lines.append(
            f"{'ok' if r['success'] else 'FAIL':6} {r['severity']:8} {_short(r):58} "
            f"{res.get('unexpected_count', '') if res.get('unexpected_count') is not None else '':>10}  "
            f"{json.dumps(observed, default=str)[:60]}"
        )
    return "\n".join(lines)


def report_stem(dag_id: str, step_id: str, batch_date: date) -> str:
    """A batch's validation report under the reports folder, without its suffix (.html, .json): the UI's
    links (task button, Definitions page) are built from it."""
    return f"{dag_id}/{step_id}/batch_date={batch_date.isoformat()}"


def _write_reports(ctx: RunContext, step: ValidateStep, batch: Batch, rows: int, results: dict[str, Any]
                   ) -> tuple[Path, Path]:
    stem = report_stem(ctx.pipeline.dag_id, step.id, batch.batch_date)
    (ctx.reports_root / stem).parent.mkdir(parents=True, exist_ok=True)
    json_path = ctx.reports_root / f"{stem}.json"
    # GX's result fields may quote a driver's error: the report is scrubbed like every other output.
    json_path.write_text(scrub_known(json.dumps(results, indent=1, default=str)))
    html_path = ctx.reports_root / f"{stem}.html"
    html_path.write_text(_html(ctx.pipeline.dag_id, step.id, batch, rows, results))
    return json_path, html_path


def _html(dag_id: str, step_id: str, batch: Batch, rows: int, results: dict[str, Any]) -> str:
    body = []
    for r in results["results"]:
        res = r.get("result") or {}
        status = "pass" if r["success"] else ("fail" if r["severity"] == "fail" else "warn")
        body.append(
            f"<tr class={status}><td>{status.upper()}</td><td>{html.escape(r['severity'])}</td>"
            f"<td>{html.escape(r['type'])}</td><td><code>{html.escape(json.dumps(r['expectation_config']['kwargs'], default=str))}</code></td>"
            f"<td>{html.escape(str(res.get('unexpected_count', '')))}</td>"
            f"<td><code>{html.escape(json.dumps(res.get('observed_value', res.get('partial_unexpected_list', '')), default=str)[:300])}</code></td></tr>"
        )
    ok = all(r["success"] or r["severity"] == "warn" for r in results["results"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(dag_id)} / {html.escape(step_id)} {batch.batch_date}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
tr.pass td:first-child{{color:#186a3b}}tr.fail td:first-child{{color:#b03a2e;font-weight:bold}}tr.warn td:first-child{{color:#b9770e}}</style></head>
<body><h1>{html.escape(dag_id)} &middot; {html.escape(step_id)}</h1>
<p>batch_date <b>{batch.batch_date}</b> &middot; {rows:,} rows &middot; verdict: <b>{"passed" if ok else "FAILED"}</b>
&middot; {results["statistics"]["successful_expectations"]}/{results["statistics"]["evaluated_expectations"]} expectations met</p>
<table><tr><th>result</th><th>severity</th><th>expectation</th><th>arguments</th><th>unexpected</th><th>observed / sample</th></tr>
{"".join(body)}</table></body></html>
"""
