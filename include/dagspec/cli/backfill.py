"""`dagspec backfill`: a date range run, or run again.

`backfill` asks a running Airflow api-server for a backfill (REST API, the same call as the UI's
"Backfill" dialog and `airflow backfill create`) and follows its runs with a progress bar until
every one has ended; `--local` runs the dates in this process instead, with no scheduler.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dagspec.cli.airflow_api import AirflowClient, ApiError
from dagspec.cli.common import (
    cli_resolver,
    date_range,
    err,
    find_definition,
    folders_for,
    named_dates,
    out,
    parse_date,
    setup_logging,
)
from dagspec.cli.local_runs import own_keys, run_days

if TYPE_CHECKING:
    from pathlib import Path

    from dagspec.spec.model import Pipeline
    from dagspec.stages.context import RunContext

DEFAULT_URL = "http://127.0.0.1:8080"
POLL_S = 3.0
TERMINAL = {"success", "failed"}


def backfill(
    dag_id: str,
    from_: str = typer.Option(..., "--from", help="First date YYYY-MM-DD (the run whose data interval starts then)."),
    to: str = typer.Option(..., "--to", help="Last date YYYY-MM-DD (inclusive)."),
    local: bool = typer.Option(False, "--local", help="Run the dates in this process: no scheduler, no Airflow DB."),
    reprocess: bool = typer.Option(
        False, "--reprocess",
        help="Also re-run dates that already succeeded (Airflow: reprocess_behavior=completed; "
        "--local: dates whose partitions exist). Each re-run replaces exactly its own partitions.",
    ),
    url: str = typer.Option(None, "--url", envvar="DAGSPEC_AIRFLOW_URL", help=f"Airflow api-server (default {DEFAULT_URL})."),
    username: str = typer.Option("admin", "--username", envvar="DAGSPEC_AIRFLOW_USERNAME"),
    password: str | None = typer.Option(
        None, "--password", envvar="DAGSPEC_AIRFLOW_PASSWORD", show_default=False,
        help="Default: the dev stack's generated password file in $AIRFLOW_HOME.",
    ),
    chunk: int | None = typer.Option(None, "--chunk", min=1, help="Dates per run, each source read once for all of "
                                     "them: --local (default: the definition's batch_size), or one Airflow run per "
                                     "chunk whose data interval spans it (default: Airflow's backfill, a run a date)."),
    max_active_runs: int = typer.Option(4, "--max-active-runs", min=1, help="Runs in flight at once."),
    timeout: float = typer.Option(0, "--timeout", help="Give up following after this many seconds (0: never)."),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Run (or re-run) a date range: an Airflow backfill followed to the end, or --local in-process."""
    first, last = parse_date(from_), parse_date(to)
    found = find_definition(dag_id) if local else None
    pipeline = found[1] if found else None
    days = date_range(pipeline, first, last, first_flag="--from", last_flag="--to")
    if found:
        setup_logging(verbose)
        raise typer.Exit(_local(dag_id, found, days, reprocess, chunk))
    client = AirflowClient(url or DEFAULT_URL, username, password)
    if chunk is not None and chunk > 1:
        raise typer.Exit(_remote_chunked(client, dag_id, days, chunk, reprocess, timeout))
    raise typer.Exit(_remote(client, dag_id, run_bounds(dag_id, first, last), reprocess, max_active_runs, timeout))


# ---------------------------------------------------------------- local


def _local(dag_id: str, found: tuple[Path, Pipeline], days: list[date], reprocess: bool, chunk: int | None) -> int:
    from dagspec.plan import plan_of
    from dagspec.stages.context import RunContext

    path, pipeline = found
    if not reprocess:
        done = _loaded_days(pipeline, days, plan_of(pipeline).store_tables(), RunContext)
        if done:
            err.print(f"skipping {len(done)} date(s) already loaded: {named_dates(done)} (--reprocess re-runs them)",
                      soft_wrap=True)
        days = [d for d in days if d not in done]
    return _summary(dag_id, len(days), run_days(dag_id, pipeline, days, keep_going=True,
                                                folders=folders_for(path), chunk=chunk))


def _loaded_days(pipeline: Pipeline, days: list[date], tables: list[tuple[str, str]], context_cls: type[RunContext]) -> set[date]:
    """Dates whose partitions all exist and whose last run here recorded every step a success. Partitions alone
    prove nothing (a step after the extract may have failed on the date, or the run was killed: a record
    left 'running'), and neither does a date with no record (a run killed before this version recorded it)."""
    from dagspec.partitions import as_key
    from dagspec.plan import plan_of
    from dagspec.runner import window_of_day

    ctx = context_cls(pipeline, window_of_day(pipeline, days[0]), resolver=cli_resolver())
    present = [set(ctx.store.partitions(schema, table)) for schema, table in tables]
    steps = set(plan_of(pipeline).order)
    done = set()
    for d in days:
        # A sub-daily date is loaded only when each of its intervals is: staged and recorded a success.
        keys = [as_key(k) for k in own_keys(pipeline, window_of_day(pipeline, d), [d])]
        if not all(k in keys_there for keys_there in present for k in keys):
            continue
        records = [ctx.store.run_record(pipeline.dag_id, k) or {} for k in keys]
        if all(r.get("state") == "success" and set(r.get("steps", {})) >= steps
               and set(r["steps"].values()) == {"success"} for r in records):
            done.add(d)
        elif any(r.get("state") == "running" for r in records):
            record = next(r for r in records if r.get("state") == "running")
            err.print(escape(f"{pipeline.dag_id} {d}: run {str(record.get('run_id', '?'))[:8]} started "
                             f"{record.get('started_at', '?')} never ended (killed?): running the date again"),
                      soft_wrap=True)
    return done


# ---------------------------------------------------------------- Airflow


def _remote_chunked(client: AirflowClient, dag_id: str, days: list[date], chunk: int, reprocess: bool,
                    timeout: float) -> int:
    from dagspec.cli.backfill_chunks import remote_chunks
    from dagspec.paths import definitions_dir
    from dagspec.spec.discovery import find_definition as find_here

    found = find_here(definitions_dir(), dag_id)
    if found is None:  # the chunks' intervals come from its schedule and time zone
        err.print(f"[red]--chunk needs the definition of {dag_id} here (in {definitions_dir()})[/]")
        return 2
    return _summary(dag_id, len(days), remote_chunks(client, found[1], days, chunk, reprocess, timeout))


@dataclass
class BackfillState:
    dates: list[str]  # logical dates (ISO) the backfill will run
    runs: dict[str, dict] = field(default_factory=dict)  # logical date -> latest run

    def finished(self) -> list[dict]:
        return [r for r in self.runs.values() if r["state"] in TERMINAL]


def run_bounds(dag_id: str, first: date, last: date) -> tuple[date, date, str, str]:
    """The dates and the logical dates (UTC) of the runs whose data intervals start on them: in the
    definition's time zone and schedule when it is here to read, else midnight UTC."""
    from dagspec.paths import definitions_dir
    from dagspec.spec.discovery import find_definition as find_here
    from dagspec.spec.schedule import window_for
    from dagspec.windows import Window

    found = find_here(definitions_dir(), dag_id)
    if found is None:
        return first, last, f"{first.isoformat()}T00:00:00Z", f"{last.isoformat()}T00:00:00Z"
    pipeline = found[1]
    lo, hi = (window_for(pipeline.schedule, d, pipeline.timezone)[0] for d in (first, last))
    end = window_for(pipeline.schedule, last, pipeline.timezone)[1]
    if pipeline.grain_cron is not None and hi < end:
        # Airflow's range is of logical dates (interval starts), inclusive: at a sub-daily grain the last date's
        # runs go on to its last interval, not just its first.
        hi = pipeline.batches_of(Window(hi, end))[-1].from_at
    return first, last, f"{lo:%Y-%m-%dT%H:%M:%SZ}", f"{hi:%Y-%m-%dT%H:%M:%SZ}"


def _remote(client: AirflowClient, dag_id: str, bounds: tuple[date, date, str, str], reprocess: bool,
            max_active_runs: int, timeout: float) -> int:
    first, last, lo, hi = bounds
    body = {
        "dag_id": dag_id, "from_date": lo, "to_date": hi,
        # Without --reprocess, dates that failed run again and dates that succeeded are left alone.
        "reprocess_behavior": "completed" if reprocess else "failed",
        "max_active_runs": max_active_runs,
    }
    try:
        planned = client.call("POST", "/backfills/dry_run", json=body)["backfills"]
        if not planned:
            out.print(f"[green]{dag_id}: nothing to run[/] from {first} to {last} "
                      "(every date already has a run; --reprocess runs them again)")
            return 0
        backfill = client.call("POST", "/backfills", json=body)
    except ApiError as exc:
        err.print(f"[red]Airflow refused the backfill of {dag_id}[/]: {escape(str(exc))}")
        return 2
    state = BackfillState(sorted(p["logical_date"] for p in planned if p.get("logical_date")))
    err.print(f"backfill {backfill['id']} of {dag_id}: {len(state.dates)} run(s) from {first} to {last}"
              f"{' (reprocessing completed dates)' if reprocess else ''}")
    deadline = time.monotonic() + timeout if timeout else None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} runs"), TimeElapsedColumn(), console=err) as progress:
        bar = progress.add_task(dag_id, total=len(state.dates))
        reported: set[str] = set()
        while True:
            _refresh(client, dag_id, lo, hi, state)
            for run in state.finished():
                if run["state"] == "failed" and run["dag_run_id"] not in reported:
                    reported.add(run["dag_run_id"])
                    progress.console.print(_failure_text(client, dag_id, run))
            running = sum(1 for r in state.runs.values() if r["state"] == "running")
            progress.update(bar, completed=len(state.finished()),
                            description=f"{dag_id} · {running} running")
            done = client.call("GET", f"/backfills/{backfill['id']}").get("completed_at")
            if done and len(state.finished()) >= len(state.dates):
                break
            if deadline and time.monotonic() > deadline:
                progress.stop()
                err.print(f"[yellow]stopped following after {timeout:g} s; the backfill goes on in Airflow[/]")
                return 3
            time.sleep(POLL_S)
    failures = [(r["logical_date"][:10], f"run {r['dag_run_id']}") for r in state.finished() if r["state"] == "failed"]
    return _summary(dag_id, len(state.dates), failures)


def _refresh(client: AirflowClient, dag_id: str, lo: str, hi: str, state: BackfillState) -> None:
    runs = client.call("GET", f"/dags/{dag_id}/dagRuns", params={
        "logical_date_gte": lo, "logical_date_lte": hi, "run_type": "backfill", "limit": 1000,
        "order_by": "id",
    })["dag_runs"]
    wanted = {d[:19] for d in state.dates}
    for run in runs:  # ordered by id: the newest run of a date wins
        if run["logical_date"] and run["logical_date"][:19] in wanted:
            state.runs[run["logical_date"][:19]] = run


def _failure_text(client: AirflowClient, dag_id: str, run: dict) -> str:
    from urllib.parse import quote

    try:
        tis = client.call("GET", f"/dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances")
        failed = [t["task_id"] for t in tis["task_instances"] if t["state"] in ("failed", "upstream_failed")]
    except ApiError:
        failed = []
    return (f"[red]{dag_id} {run['logical_date'][:10]}: failed[/]"
            + (f" (tasks: {', '.join(failed)})" if failed else "")
            + f" -> {client.url}/dags/{dag_id}/runs/{quote(run['dag_run_id'], safe='')}")


def _summary(dag_id: str, total: int, failures: list[tuple]) -> int:
    if failures:
        err.print(f"[red]{dag_id}: {len(failures)} of {total} date(s) failed:[/] "
                  + ", ".join(str(d) for d, _ in failures))
        return 1
    out.print(f"[green]{dag_id}: {total} date(s) done[/]")
    return 0
