"""The Definitions page: every definition with its DAG, schedule, validity, last run, newest partition and
current model champion.

A small FastAPI app the plugin (dagspec.airflow.plugin, registered through the `airflow.plugins`
entry point) mounts in Airflow's api-server at
/dagspec, shown in the UI's Browse menu as an external view (an iframe of /dagspec/). It
answers only to a signed-in user: Airflow's own JWT, as a Bearer header or the UI's cookie.

The model registry is asked in a background thread with a time budget: a slow or unreachable registry
turns the champion cells into "unavailable", never a slow or failed page.
"""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from dagspec.connections import ConnectionInfo, ConnectionNotFound, embedded_default

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dagspec.connections import Resolver
    from dagspec.ml.registry import Registry
    from dagspec.partitions import PartitionKey
    from dagspec.spec.model import Pipeline

log = logging.getLogger(__name__)


@dataclass
class Row:
    file: str
    dag_id: str | None
    schedule: str | None
    valid: bool
    errors: list[str] = field(default_factory=list)
    last_run_state: str | None = None
    last_run_date: str | None = None
    partitions: list[dict[str, Any]] = field(default_factory=list)  # table, batch_date, rows
    stale: bool | None = None  # None: the definition sets no freshness
    # One per model the definition trains, evaluates, scores or checks for drift (see champion_cells).
    models: list[dict[str, Any]] = field(default_factory=list)
    # The newest validation report of each validate step: step, batch_date, passed, href (reports route).
    reports: list[dict[str, Any]] = field(default_factory=list)


def definitions_folder() -> Path:
    """The definitions next to the loader in Airflow's DAGs folder (what the dag-processor reads)."""
    from airflow.configuration import conf

    from dagspec.paths import definitions_dir

    served = Path(conf.get("core", "dags_folder")) / "definitions"
    return served if served.is_dir() else definitions_dir()


def server_resolver(conn_id: str) -> ConnectionInfo:
    """Connections as the api-server sees them (metadata DB, env, secrets backends), else the defaults."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        default = embedded_default(conn_id)
        if default is None:
            raise ConnectionNotFound(conn_id) from None
        return default
    return ConnectionInfo(conn_id, conn.conn_type or "", conn.host, conn.port, conn.login, conn.password,
                          conn.schema, conn.extra_dejson or {})


def last_runs(dag_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    """dag_id -> (state, logical date) of its most recent run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    if not dag_ids:
        return {}
    with create_session() as session:
        newest = (select(DagRun.dag_id, func.max(DagRun.id).label("id"))
                  .where(DagRun.dag_id.in_(dag_ids)).group_by(DagRun.dag_id).subquery())
        rows = session.execute(
            select(DagRun.dag_id, DagRun.state, DagRun.logical_date).join(newest, DagRun.id == newest.c.id)
        ).all()
    return {d: (str(s), ld.date().isoformat() if ld else None) for d, s, ld in rows}


# The metric shown beside a champion when no promote step names one: the usual headline metric per task.
PRIMARY_BY_TASK = {"classification": "roc_auc", "regression": "rmse"}
MULTICLASS_HEADLINE = "f1_macro"  # a classifier of three or more classes has no roc_auc
REGISTRY_WAIT_S = 5.0  # how long a page load waits for the registry before showing "unavailable"
_registries: dict[tuple[str, str | None], Any] = {}  # one client per registry, reused across page loads
_lookups: dict[str, threading.Thread] = {}  # tracking URI -> its lookup still running (at most one each)
_lock = threading.Lock()


def model_names(pipeline: Pipeline) -> list[str]:
    """The registered models a definition works with (train, score and drift steps name one)."""
    from dagspec.spec.ml_steps import ModelStepBase

    return sorted({s.model for s in pipeline.steps if isinstance(s, ModelStepBase)})


def primary_metrics(pipelines: Iterable[Pipeline]) -> dict[str, str]:
    """model -> the metric its promote step decides on (else the task's headline metric), over every definition."""
    from dagspec.spec.ml_steps import EvaluateStep, PromoteStep, TrainStep

    pipelines = list(pipelines)
    found = {s.model: MULTICLASS_HEADLINE if s.classes else PRIMARY_BY_TASK[s.task]
             for p in pipelines for s in p.steps if isinstance(s, TrainStep)}
    for pipeline in pipelines:  # a promote step's choice wins over the default
        steps = {s.id: s for s in pipeline.steps}
        for step in pipeline.steps:
            evaluate = steps.get(step.input) if isinstance(step, PromoteStep) else None
            train = steps.get(evaluate.input) if isinstance(evaluate, EvaluateStep) else None
            if isinstance(train, TrainStep):
                found[train.model] = step.primary
    return found


def _cell(model: str, state: str, metric: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"model": model, "state": state, "version": None, "metric": metric, "value": None, "detail": None, **kw}


def _open_registry(resolver: Resolver) -> Registry:
    from dagspec.ml.registry import Registry

    opened = Registry.open(resolver)  # the registry connection, resolved as every step resolves it
    with _lock:
        return _registries.setdefault((opened.tracking_uri, opened.artifact_root), opened)


def _lookup(reg: Registry, models: dict[str, str | None], out: dict[str, dict[str, Any]], done: threading.Event) -> None:
    try:
        # Registry.champion() reads any registry error as "no champion": make sure the registry answers first.
        reg.client.search_registered_models(max_results=1)
        for model, metric in models.items():
            try:
                champ = reg.champion(model)
                if champ is None:
                    out[model] = _cell(model, "none", metric)
                    continue
                run = reg.client.get_run(champ.run_id)
                metric = metric or PRIMARY_BY_TASK.get(run.data.tags.get("dagspec.task", ""))
                if metric not in run.data.metrics and MULTICLASS_HEADLINE in run.data.metrics:
                    # classes not declared: the default 0/1 headline is not measured, the multi-class one is
                    metric = MULTICLASS_HEADLINE
                out[model] = _cell(model, "champion", metric, version=str(champ.version),
                                   value=run.data.metrics.get(metric) if metric else None)
            except Exception as exc:
                log.warning("dagspec Definitions page: champion of %r: %s: %s", model, type(exc).__name__, exc)
                out[model] = _cell(model, "unavailable", metric, detail=type(exc).__name__)
    except Exception as exc:
        log.warning("dagspec Definitions page: model registry %s: %s: %s", reg.tracking_uri, type(exc).__name__, exc)
        out.update({m: _cell(m, "unavailable", metric, detail=f"registry: {type(exc).__name__}")
                    for m, metric in models.items()})
    finally:
        done.set()


def champion_cells(models: dict[str, str | None], resolver: Resolver = server_resolver,
                   wait: float = REGISTRY_WAIT_S) -> dict[str, dict[str, Any]]:
    """model -> its champion cell: state "champion" (with version, metric and value), "none" (no champion yet)
    or "unavailable" (the registry failed or did not answer within `wait` seconds). Never raises."""
    if not models:
        return {}

    def unavailable(detail: str) -> dict[str, dict[str, Any]]:
        return {m: _cell(m, "unavailable", metric, detail=detail) for m, metric in models.items()}

    try:
        reg = _open_registry(resolver)
    except Exception as exc:
        log.warning("dagspec Definitions page: cannot open the model registry: %s: %s", type(exc).__name__, exc)
        return unavailable(f"registry connection: {type(exc).__name__}")
    embedded = reg.tracking_uri.removeprefix("sqlite:///") if reg.tracking_uri.startswith("sqlite:///") else None
    if embedded is not None and not Path(embedded).exists():
        return {m: _cell(m, "none", metric) for m, metric in models.items()}  # nothing registered yet
    with _lock:
        running = _lookups.get(reg.tracking_uri)
        if running is not None and running.is_alive():  # one stuck request per registry, not one per page load
            return unavailable("registry still not answering")
        out: dict[str, dict[str, Any]] = {}
        done = threading.Event()
        thread = threading.Thread(target=_lookup, args=(reg, dict(models), out, done), daemon=True,
                                  name="dagspec-champions")
        _lookups[reg.tracking_uri] = thread
        thread.start()
    if not done.wait(wait):
        return unavailable(f"registry did not answer within {wait:g} s")
    return out


def collect(folder: Path | None = None, resolver: Resolver = server_resolver,
            registry_wait: float = REGISTRY_WAIT_S) -> list[Row]:
    from dagspec.airflow.ui_reports import latest_reports
    from dagspec.freshness import check_freshness
    from dagspec.paths import data_home
    from dagspec.plan import plan_of
    from dagspec.spec.bundles import key_of
    from dagspec.spec.discovery import scan
    from dagspec.store import Store

    folder = folder or definitions_folder()
    good, bad = scan(folder)
    try:
        runs = last_runs([p.dag_id for p in good.values()])
    except Exception:  # the page still lists definitions when the metadata DB is unreachable
        log.exception("dagspec Definitions page: cannot read the last runs")
        runs = {}
    wanted = {m for p in good.values() for m in model_names(p)}
    primaries = primary_metrics(good.values())
    champions = champion_cells({m: primaries.get(m) for m in sorted(wanted)}, resolver, registry_wait)
    rows = []
    for path in sorted({*good, *bad}):
        if path in bad:
            rows.append(Row(key_of(path, folder), None, None, False, [str(p) for p in bad[path].problems]))
            continue
        pipeline = good[path]
        state, when = runs.get(pipeline.dag_id, (None, None))
        row = Row(key_of(path, folder), pipeline.dag_id, pipeline.schedule, True, last_run_state=state, last_run_date=when,
                  models=[champions[m] for m in model_names(pipeline)])
        try:
            store = Store.from_connection(resolver(pipeline.store.conn_id))
            for schema, table in plan_of(pipeline).store_tables():
                keys = store.partitions(schema, table)
                if keys:
                    row.partitions.append(partition_cell(f"{schema}.{table}", keys,
                                                         store.partition(schema, table, keys[-1]).rows))
            if pipeline.freshness:
                row.stale = any(v.stale for v in check_freshness(pipeline, resolver=resolver))
            row.reports = latest_reports(data_home() / "reports", pipeline)
        except Exception as exc:  # one unreadable store must not hide the other definitions
            row.errors.append(f"store: {type(exc).__name__}: {exc}")
        rows.append(row)
    return rows


def partition_cell(table: str, keys: list[PartitionKey], rows: int) -> dict[str, Any]:
    """The newest partition of a table at its grain; for a sub-daily one also how many its day holds (a day
    short of its intervals is the first thing to see on the page)."""
    newest = keys[-1]
    cell: dict[str, Any] = {"table": table, "batch_date": newest.display, "rows": rows}
    if newest.is_sub_daily:
        cell["day"] = newest.day.isoformat()
        cell["day_partitions"] = sum(k.day == newest.day for k in keys)
    return cell


def partition_html(cell: dict[str, Any]) -> str:
    e = html.escape
    count = f"; {cell['day_partitions']} partitions on {e(cell['day'])}" if "day_partitions" in cell else ""
    return f"<div>{e(cell['table'])}: {e(cell['batch_date'])} ({cell['rows']:,} rows{count})</div>"


def champion_html(cell: dict[str, Any]) -> str:
    e = html.escape
    name = f"<code>{e(cell['model'])}</code>"
    if cell["state"] == "champion":
        value = cell["value"]
        measured = f" · {e(cell['metric'])} {value:.4f}" if cell["metric"] and value is not None else \
            (f" · {e(cell['metric'])} n/a" if cell["metric"] else "")
        return f'<div>{name}: <span class="ok">v{e(cell["version"])}</span>{measured}</div>'
    if cell["state"] == "none":
        return f"<div>{name}: no champion yet</div>"
    return f'<div>{name}: <span class="bad" title="{e(cell["detail"] or "")}">unavailable</span></div>'


def report_html(report: dict[str, Any]) -> str:
    e = html.escape
    verdict = '<span class="ok">passed</span>' if report["passed"] else '<span class="bad">failed</span>'
    return (f'<div><a href="{e(report["href"])}" target="_blank">{e(report["step"])} '
            f'{e(report["batch_date"])}</a>: {verdict}</div>')


def render(rows: list[Row]) -> str:
    e = html.escape
    body = []
    for r in rows:
        status = '<span class="ok">valid</span>' if r.valid else '<span class="bad">invalid</span>'
        errors = "".join(f"<li>{e(x)}</li>" for x in r.errors)
        parts = "".join(map(partition_html, r.partitions))
        fresh = "" if r.stale is None else (' <span class="bad">stale</span>' if r.stale else ' <span class="ok">fresh</span>')
        run = f'<span class="state-{e(r.last_run_state)}">{e(r.last_run_state)}</span> {e(r.last_run_date or "")}' \
            if r.last_run_state else ("no run yet" if r.valid else "-")
        dag = f'<a href="../dags/{e(r.dag_id)}" target="_top">{e(r.dag_id)}</a>' if r.dag_id else "-"
        body.append(
            f'<tr data-file="{e(r.file)}"><td>{e(r.file)}</td><td>{dag}</td><td><code>{e(str(r.schedule or "-"))}</code></td>'
            f"<td>{status}{f'<ul>{errors}</ul>' if errors else ''}</td><td>{run}</td>"
            f"<td>{parts or 'none'}{fresh}</td><td>{''.join(map(champion_html, r.models)) or '-'}</td>"
            f"<td>{''.join(map(report_html, r.reports)) or '-'}</td></tr>"
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dagspec definitions</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a202c; }}
 table {{ border-collapse: collapse; width: 100%; }}
 th, td {{ text-align: left; vertical-align: top; padding: .45rem .7rem; border-bottom: 1px solid #e2e8f0; }}
 th {{ background: #f7fafc; }} ul {{ margin: .3rem 0 0 1rem; padding: 0; color: #c53030; font-size: .9em; }}
 .ok {{ color: #2f855a; font-weight: 600; }} .bad {{ color: #c53030; font-weight: 600; }}
 .state-success {{ color: #2f855a; }} .state-failed {{ color: #c53030; }} .state-running {{ color: #2b6cb0; }}
</style></head><body>
<h1>Definitions</h1>
<p>{len(rows)} definition(s), {sum(not r.valid for r in rows)} invalid.</p>
<table><thead><tr><th>file</th><th>DAG id</th><th>schedule</th><th>valid</th><th>last run</th>
<th>latest staged partition</th><th>model champion</th><th>latest checks</th></tr></thead><tbody>
{''.join(body)}
</tbody></table></body></html>"""


def create_app() -> FastAPI:
    from airflow.api_fastapi.core_api.security import get_user

    app = FastAPI(title="dagspec definitions", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(get_user)])
    def page() -> str:
        return render(collect())

    @app.get("/api/definitions", dependencies=[Depends(get_user)])
    def definitions() -> list[dict[str, Any]]:
        return [asdict(r) for r in collect()]

    from dagspec.airflow.ui_reports import add_report_routes
    from dagspec.paths import data_home

    add_report_routes(app, get_user, lambda: data_home() / "reports")
    return app


