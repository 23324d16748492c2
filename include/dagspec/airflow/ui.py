"""The Definitions page: every definition with its DAG, schedule, validity, last run and newest partition.

A small FastAPI app the plugin (plugins/dagspec_plugin.py) mounts in Airflow's api-server at
/dagspec, shown in the UI's Browse menu as an external view (an iframe of /dagspec/). It
answers only to a signed-in user: Airflow's own JWT, as a Bearer header or the UI's cookie.
"""

from __future__ import annotations

import html
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse

from dagspec.connections import ConnectionInfo, ConnectionNotFound, embedded_default

log = logging.getLogger(__name__)
URL_PREFIX = "/dagspec"


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
    from sqlalchemy import func, select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    if not dag_ids:
        return {}
    with create_session() as session:
        newest = (select(DagRun.dag_id, func.max(DagRun.id).label("id"))
                  .where(DagRun.dag_id.in_(dag_ids)).group_by(DagRun.dag_id).subquery())
        rows = session.execute(
            select(DagRun.dag_id, DagRun.state, DagRun.logical_date).join(newest, DagRun.id == newest.c.id)
        ).all()
    return {d: (str(s), ld.date().isoformat() if ld else None) for d, s, ld in rows}


def collect(folder: Path | None = None, resolver=server_resolver) -> list[Row]:
    from dagspec.airflow.loader import scan
    from dagspec.freshness import check_freshness, store_tables
    from dagspec.store import Store

    folder = folder or definitions_folder()
    good, bad = scan(folder)
    try:
        runs = last_runs([p.dag_id for p in good.values()])
    except Exception:  # the page still lists definitions when the metadata DB is unreachable
        log.exception("dagspec Definitions page: cannot read the last runs")
        runs = {}
    rows = []
    for path in sorted({*good, *bad}):
        if path in bad:
            rows.append(Row(path.name, None, None, False, [str(p) for p in bad[path].problems]))
            continue
        pipeline = good[path]
        state, when = runs.get(pipeline.dag_id, (None, None))
        row = Row(path.name, pipeline.dag_id, pipeline.schedule, True, last_run_state=state, last_run_date=when)
        try:
            store = Store.from_connection(resolver(pipeline.store.conn_id))
            for schema, table in store_tables(pipeline):
                dates = store.batch_dates(schema, table)
                if dates:
                    row.partitions.append({"table": f"{schema}.{table}", "batch_date": dates[-1].isoformat(),
                                           "rows": store.partition(schema, table, dates[-1]).rows})
            if pipeline.freshness:
                row.stale = any(v.stale for v in check_freshness(pipeline, resolver=resolver))
        except Exception as exc:  # one unreadable store must not hide the other definitions
            row.errors.append(f"store: {type(exc).__name__}: {exc}")
        rows.append(row)
    return rows


def render(rows: list[Row]) -> str:
    e = html.escape
    body = []
    for r in rows:
        status = '<span class="ok">valid</span>' if r.valid else '<span class="bad">invalid</span>'
        errors = "".join(f"<li>{e(x)}</li>" for x in r.errors)
        parts = "".join(f"<div>{e(p['table'])}: {e(p['batch_date'])} ({p['rows']:,} rows)</div>" for p in r.partitions)
        fresh = "" if r.stale is None else (' <span class="bad">stale</span>' if r.stale else ' <span class="ok">fresh</span>')
        run = f'<span class="state-{e(r.last_run_state)}">{e(r.last_run_state)}</span> {e(r.last_run_date or "")}' \
            if r.last_run_state else ("no run yet" if r.valid else "-")
        dag = f'<a href="../dags/{e(r.dag_id)}" target="_top">{e(r.dag_id)}</a>' if r.dag_id else "-"
        body.append(
            f'<tr data-file="{e(r.file)}"><td>{e(r.file)}</td><td>{dag}</td><td><code>{e(str(r.schedule or "-"))}</code></td>'
            f"<td>{status}{f'<ul>{errors}</ul>' if errors else ''}</td><td>{run}</td>"
            f"<td>{parts or 'none'}{fresh}</td></tr>"
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
<th>latest staged partition</th></tr></thead><tbody>
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

    return app


EXTERNAL_VIEW = {
    "name": "Definitions",
    "href": f"{URL_PREFIX.lstrip('/')}/",
    "destination": "nav",
    "category": "browse",
    "url_route": "dagspec-definitions",
}
