"""A validate step's reports: the GX result JSON, the HTML page a steward opens from the task log, the log table.

With on_fail 'drop_rows' the result JSON gains a "drop_rows" object (rows checked, passed, dropped, the failing
rows of each dropping check, the checks evaluated again on the passing rows) and the page shows it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.partitions import Key, as_key
from dagspec.secrets import scrub_known

if TYPE_CHECKING:

    from dagspec.windows import Batch


def short(r: dict[str, Any]) -> str:
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
            f"{'ok' if r['success'] else 'FAIL':6} {r['severity']:8} {short(r):58} "
            f"{res.get('unexpected_count', '') if res.get('unexpected_count') is not None else '':>10}  "
            f"{json.dumps(observed, default=str)[:60]}"
        )
    return "\n".join(lines)


def report_stem(dag_id: str, step_id: str, batch_date: Key) -> str:
    """A batch's validation report under the reports folder, without its suffix (.html, .json): the UI's
    links (task button, Definitions page) are built from it."""
    return f"{dag_id}/{step_id}/{as_key(batch_date).segment}"


def write_reports(reports_root: Path, dag_id: str, step_id: str, batch: Batch, rows: int, results: dict[str, Any],
                  passed: bool) -> tuple[Path, Path]:
    stem = report_stem(dag_id, step_id, batch.key)
    (reports_root / stem).parent.mkdir(parents=True, exist_ok=True)
    json_path = reports_root / f"{stem}.json"
    results = {**results, "passed": passed}  # the step's verdict: GX's "success" is false once a row was dropped
    # GX's result fields may quote a driver's error: the report is scrubbed like every other output.
    json_path.write_text(scrub_known(json.dumps(results, indent=1, default=str)))
    html_path = reports_root / f"{stem}.html"
    html_path.write_text(_html(dag_id, step_id, batch, rows, results, passed))
    return json_path, html_path


def _rows_html(results: list[dict[str, Any]]) -> str:
    body = []
    for r in results:
        res = r.get("result") or {}
        status = "pass" if r["success"] else ("fail" if r["severity"] == "fail" else "warn")
        body.append(
            f"<tr class={status}><td>{status.upper()}</td><td>{html.escape(r['severity'])}</td>"
            f"<td>{html.escape(r['type'])}</td><td><code>{html.escape(json.dumps(r['expectation_config']['kwargs'], default=str))}</code></td>"
            f"<td>{html.escape(str(res.get('unexpected_count', '')))}</td>"
            f"<td><code>{html.escape(json.dumps(res.get('observed_value', res.get('partial_unexpected_list', '')), default=str)[:300])}</code></td></tr>"
        )
    return ("<table><tr><th>result</th><th>severity</th><th>expectation</th><th>arguments</th><th>unexpected</th>"
            f"<th>observed / sample</th></tr>\n{''.join(body)}</table>")


def _drop_html(drop: dict[str, Any]) -> str:
    """The drop_rows part of the page: the counts, the failing rows of each dropping check, the second pass."""
    by = "".join(f"<tr><td>{html.escape(name)}</td><td>{n:,}</td></tr>" for name, n in drop["dropped_by"].items())
    limit = drop["max_dropped"]
    out = (f"<h2>Rows dropped (on_fail drop_rows)</h2><p id=drop-counts>{drop['rows_checked']:,} rows checked "
           f"&middot; <b>{drop['rows_passed']:,} passed</b> &middot; <b>{drop['rows_dropped']:,} dropped</b> "
           f"(to the quarantine table) &middot; passing rows in <code>{html.escape(str(drop['passed_table']))}</code>"
           f"{'' if limit is None else f' &middot; max_dropped {html.escape(str(limit))}'}</p>")
    if by:
        out += f"<table><tr><th>dropping check</th><th>failing rows</th></tr>{by}</table>"
    if drop.get("stopped"):
        out += f"<p class=stop><b>Stopped:</b> {html.escape(drop['stopped'])}</p>"
    if drop.get("passing_rows_results") is not None:
        out += ("<h2>Checked again on the passing rows</h2>" + _rows_html(drop["passing_rows_results"]))
    return out


def _html(dag_id: str, step_id: str, batch: Batch, rows: int, results: dict[str, Any], passed: bool) -> str:
    drop = results.get("drop_rows")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(dag_id)} / {html.escape(step_id)} {batch.key}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}
tr.pass td:first-child{{color:#186a3b}}tr.fail td:first-child{{color:#b03a2e;font-weight:bold}}tr.warn td:first-child{{color:#b9770e}}</style></head>
<body><h1>{html.escape(dag_id)} &middot; {html.escape(step_id)}</h1>
<p>batch_date <b>{batch.key}</b> &middot; {rows:,} rows &middot; verdict: <b>{"passed" if passed else "FAILED"}</b>
&middot; {results["statistics"]["successful_expectations"]}/{results["statistics"]["evaluated_expectations"]} expectations met</p>
{_rows_html(results["results"])}
{_drop_html(drop) if drop else ""}</body></html>
"""
