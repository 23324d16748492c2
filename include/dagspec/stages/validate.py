"""Validate: Great Expectations 1.x on a step's batch; a failed 'fail' expectation stops the run.

GX is imported here, inside the task, never at DAG parse time (it costs seconds to import).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from dagspec.spec.model import ExtractStep, ValidateStep
from dagspec.stages.context import RunContext, StepFailed
from dagspec.windows import Batch


class ValidationFailed(StepFailed):
    pass


def run_validate(ctx: RunContext, step: ValidateStep) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    failures: list[str] = []
    for batch in ctx.batches:
        table = _read_batch(ctx, step.input, batch)
        results = check(table.to_pandas(), step, suite_name=f"{ctx.pipeline.dag_id}.{step.id}")
        json_path, html_path = _write_reports(ctx, step, batch, table.num_rows, results)
        blocking = [r for r in results["results"] if not r["success"] and r["severity"] == "fail"]
        warned = [r for r in results["results"] if not r["success"] and r["severity"] == "warn"]
        ctx.log.info("validate %s batch_date=%s rows=%d\n%s", step.id, batch.batch_date, table.num_rows, summary(results))
        ctx.log.info("validation report: %s (result JSON: %s)", html_path.as_uri(), json_path)
        for r in warned:
            ctx.log.warning("expectation %s failed with severity warn: recorded, the run continues", r["type"])
        if blocking:
            failures.append(f"batch_date={batch.batch_date}: " + ", ".join(_short(r) for r in blocking))
        outcome[batch.batch_date.isoformat()] = {
            "success": not blocking, "warnings": len(warned), "report": str(html_path)
        }
    if failures:
        raise ValidationFailed("validation failed, nothing downstream will publish: " + "; ".join(failures))
    return outcome


def _read_batch(ctx: RunContext, step_id: str, batch: Batch) -> pa.Table:
    table = ctx.output_table(step_id)
    if isinstance(ctx.pipeline.step(step_id), ExtractStep):
        return ctx.store.dataset(table.schema_, table.table, [batch.batch_date]).to_table()
    with ctx.warehouse.session() as session:
        rel = ctx.expose(session, step_id, batch)
        return session.arrow(f"SELECT * FROM {rel}", {}).read_all()


def check(df, step: ValidateStep, suite_name: str) -> dict[str, Any]:
    """Run the step's expectations with GX on a DataFrame; returns GX's result dict plus each severity."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("dagspec")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("batch")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for i, e in enumerate(step.expectations):
        meta = {**e.meta, "dagspec_index": i, "severity": e.severity}
        suite.add_expectation_configuration(ExpectationConfiguration(type=e.type, kwargs=e.kwargs, meta=meta))
    result = batch.validate(suite, result_format="SUMMARY").to_json_dict()
    for r in result["results"]:
        cfg = r["expectation_config"]
        r["type"] = cfg["type"]
        r["severity"] = cfg["meta"]["severity"]
        r["index"] = cfg["meta"]["dagspec_index"]
    result["results"].sort(key=lambda r: r["index"])
    return result


def _short(r: dict[str, Any]) -> str:
    col = r["expectation_config"]["kwargs"].get("column")
    return f"{r['type']}({col})" if col else r["type"]


def summary(results: dict[str, Any]) -> str:
    lines = [f"{'result':6} {'severity':8} {'expectation':58} {'unexpected':>10}  observed"]
    for r in results["results"]:
        res = r.get("result") or {}
        observed = res.get("observed_value", res.get("partial_unexpected_list", ""))
        lines.append(
            f"{'ok' if r['success'] else 'FAIL':6} {r['severity']:8} {_short(r):58} "
            f"{res.get('unexpected_count', '') if res.get('unexpected_count') is not None else '':>10}  "
            f"{json.dumps(observed, default=str)[:60]}"
        )
    return "\n".join(lines)


def _write_reports(ctx: RunContext, step: ValidateStep, batch: Batch, rows: int, results: dict[str, Any]):
    folder = ctx.reports_root / ctx.pipeline.dag_id / step.id
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"batch_date={batch.batch_date.isoformat()}"
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    html_path = folder / f"{stem}.html"
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
