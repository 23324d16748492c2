"""`dagspec backfill --chunk N` through Airflow: one DAG run per chunk of N dates, its data interval the chunk.

Airflow's backfill API (`POST /backfills`, the UI's dialog) makes one run per schedule interval and takes no
interval length, so a chunk is a manual run triggered with an explicit `data_interval_start`/`_end`
(`POST /dags/{dag_id}/dagRuns`, which Airflow 3 takes as given): its tasks see the whole chunk as their window
and each step handles its partitions together (one source read per batch_size, one publish transaction). The run
ids name the chunk (`dagspec_chunk__<from>__<to>`), so a chunk that already succeeded is not run again unless
--reprocess, and one that failed is run again under a new id.
"""

from __future__ import annotations

import time
import uuid
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dagspec.cli.airflow_api import AirflowClient, ApiError
from dagspec.cli.common import err, out

if TYPE_CHECKING:
    from dagspec.spec.model import Pipeline

POLL_S = 3.0
TERMINAL = {"success", "failed"}


def chunk_runs(pipeline: Pipeline, days: list[date], size: int) -> list[tuple[list[date], str, str]]:
    """(dates, data_interval_start, data_interval_end) per chunk, the bounds as UTC ISO instants."""
    from dagspec.cli.local_runs import date_chunks
    from dagspec.runner import window_of_day

    runs = []
    for chunk in date_chunks(pipeline, days, size):
        lo, hi = window_of_day(pipeline, chunk[0]).start, window_of_day(pipeline, chunk[-1]).end
        runs.append((chunk, f"{lo:%Y-%m-%dT%H:%M:%SZ}", f"{hi:%Y-%m-%dT%H:%M:%SZ}"))
    return runs


def run_id_prefix(lo: str, hi: str) -> str:
    return f"dagspec_chunk__{lo}__{hi}"


def free_logical_date(client: AirflowClient, dag_id: str, lo: str) -> str:
    """The chunk's start, or the first free microsecond after it. Airflow keeps one run per logical date, and a
    chunk's start is already taken when a daily run (scheduled or backfilled), a chunk of another size or this
    chunk's own earlier run began there: Airflow answered 409 and the chunk never ran. Only the logical date
    moves; the run's window is its data interval."""
    start = datetime.fromisoformat(lo.replace("Z", "+00:00"))
    upto = f"{start + timedelta(seconds=1):%Y-%m-%dT%H:%M:%SZ}"
    found = client.call("GET", f"/dags/{dag_id}/dagRuns",
                        params={"logical_date_gte": lo, "logical_date_lt": upto, "limit": 1000})["dag_runs"]
    taken = {datetime.fromisoformat(r["logical_date"].replace("Z", "+00:00")) for r in found if r["logical_date"]}
    at = start
    while at in taken:
        at += timedelta(microseconds=1)
    return f"{at:%Y-%m-%dT%H:%M:%S.%f}Z"


def remote_chunks(client: AirflowClient, pipeline: Pipeline, days: list[date], size: int, reprocess: bool,
                  timeout: float) -> list[tuple[str, str]]:
    """Triggers and follows one run per chunk; returns (dates, what failed) per failed chunk."""
    dag_id = pipeline.dag_id
    try:
        earlier = client.call("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": "manual", "limit": 1000})
        succeeded = {r["dag_run_id"].rsplit("__", 1)[0] for r in earlier["dag_runs"] if r["state"] == "success"}
        triggered: dict[str, tuple[list[date], str]] = {}
        for chunk, lo, hi in chunk_runs(pipeline, days, size):
            prefix = run_id_prefix(lo, hi)
            if prefix in succeeded and not reprocess:
                continue
            run_id = f"{prefix}__{uuid.uuid4().hex[:8]}"
            client.call("POST", f"/dags/{dag_id}/dagRuns", json={
                "dag_run_id": run_id, "logical_date": free_logical_date(client, dag_id, lo),
                "data_interval_start": lo, "data_interval_end": hi,
                "note": f"dagspec backfill --chunk {size}: {chunk[0]} .. {chunk[-1]}"})
            triggered[run_id] = (chunk, prefix)
    except ApiError as exc:
        err.print(f"[red]Airflow refused a chunk run of {dag_id}[/]: {escape(str(exc))}")
        return [("all", str(exc))]
    if not triggered:
        out.print(f"[green]{dag_id}: nothing to run[/] (every chunk already succeeded; --reprocess runs them again)")
        return []
    err.print(f"{dag_id}: {len(triggered)} run(s) of up to {size} date(s) each")
    return _follow(client, dag_id, triggered, timeout)


def _follow(client: AirflowClient, dag_id: str, triggered: dict[str, tuple[list[date], str]], timeout: float
            ) -> list[tuple[str, str]]:
    from urllib.parse import quote

    deadline = time.monotonic() + timeout if timeout else None
    states: dict[str, str] = {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} runs"), TimeElapsedColumn(), console=err) as progress:
        bar = progress.add_task(dag_id, total=len(triggered))
        while len([s for s in states.values() if s in TERMINAL]) < len(triggered):
            for run_id in triggered:
                if states.get(run_id) not in TERMINAL:
                    states[run_id] = client.call("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
            progress.update(bar, completed=len([s for s in states.values() if s in TERMINAL]))
            if deadline and time.monotonic() > deadline:
                progress.stop()
                err.print(f"[yellow]stopped following after {timeout:g} s; the runs go on in Airflow[/]")
                return [("unfinished", run_id) for run_id, s in states.items() if s not in TERMINAL]
            if len([s for s in states.values() if s in TERMINAL]) < len(triggered):
                time.sleep(POLL_S)
    return [(f"{triggered[r][0][0]} .. {triggered[r][0][-1]}", f"run {r}") for r, s in states.items() if s == "failed"]
