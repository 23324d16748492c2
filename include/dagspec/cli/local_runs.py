"""Dates run in this process (`dagspec run`, `dagspec backfill --local`): the per-date loop with its progress
bar, and the record of each date's run kept in the store."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date
from typing import TYPE_CHECKING

from dagspec.cli.common import cli_resolver, err

if TYPE_CHECKING:
    from dagspec.connections import Resolver
    from dagspec.partitions import Key
    from dagspec.spec.bundles import Folders
    from dagspec.spec.model import Pipeline
    from dagspec.store import Store
    from dagspec.windows import Batch, Window


def run_days(dag_id: str, pipeline: Pipeline, days: list[date], *, keep_going: bool,
             folders: Folders | None = None, heal: bool = False, chunk: int | None = None) -> list[tuple[date, str]]:
    """Every step of each date's window in this process, with a progress bar; returns (date, error) per failure.
    `keep_going` moves on to the next date after a failure (a backfill), else stops there. `heal`: each date's
    run also processes the gaps of its lookback (a scheduled run's behaviour; a backfill names its dates).
    `chunk` (default: the definition's batch_size): dates per run, one window spanning them, so each step
    handles them together (one source read, one transaction); a failure fails the chunk's every date."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from dagspec.plan import plan_of
    from dagspec.runner import run_pipeline, window_of_day
    from dagspec.stages import StepFailed
    from dagspec.windows import Window

    if chunk and chunk > pipeline.batch_size:  # the chunk's dates are read together too, not only run together
        pipeline = pipeline.model_copy(update={"batch_size": chunk})
    order = plan_of(pipeline).order
    resolver = cli_resolver()
    failures: list[tuple[date, str]] = []
    done: list[tuple[date, str, dict]] = []  # (date, run id, step results) of each date that succeeded
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err) as progress:
        bar = progress.add_task(dag_id, total=len(order) * len(days))
        for run in date_chunks(pipeline, days, chunk or pipeline.batch_size):
            d, named = run[-1], (f"{run[0]} .. {run[-1]}" if len(run) > 1 else str(run[0]))
            completed = progress.tasks[0].completed
            window = Window(window_of_day(pipeline, run[0]).start, window_of_day(pipeline, d).end)
            gaps = run_gaps(pipeline, resolver, window, run[0]) if heal else []
            if gaps:
                progress.console.print(f"{dag_id} {named}: also healing {', '.join(g.key.label for g in gaps)}")
            record = RunRecord(pipeline, resolver, d, [g.key for g in gaps], own_keys(pipeline, window, run))

            def on_step(step_id: str, state: str, _result: object, named: str = named, record: RunRecord = record,
                        n: int = len(run)) -> None:
                record.step(step_id, state)
                if state == "running":
                    progress.update(bar, description=f"{dag_id} {named} · {step_id}")
                else:
                    progress.advance(bar, n)

            try:
                results = run_pipeline(pipeline, window, on_step=on_step, resolver=resolver, folders=folders, gaps=gaps)
                record.finish("success")
                done.extend((day, record.about["run_id"], results) for day in run)
            except Exception as exc:
                # A StepFailed is already worded for people; both still lose every form of every secret.
                text = _error_summary(str(exc) if isinstance(exc, StepFailed) else exc, pipeline, resolver)
                record.finish("failed", text)
                failures.extend((day, text) for day in run)
                # The bar must not look finished and fine: its line says failed, in red, for good.
                progress.update(bar, completed=completed + len(order) * len(run),
                                description=f"[red]✗ {dag_id} {named} · failed[/]")
                # Escaped: an error quoting '[/]' (a password's characters, a value) is text, not Rich markup.
                progress.console.print(f"[red]{dag_id} {named}: failed[/]: {escape(text)}")
                if not keep_going:
                    break
        if failures:
            progress.update(bar, description=f"[red]✗ {dag_id}: {len(failures)} of {len(days)} date(s) failed[/]")
        else:
            progress.update(bar, description=f"[green]✓ {dag_id}[/]")
    if done and not failures:
        alert_success(pipeline, resolver, done)
    return failures


def date_chunks(pipeline: Pipeline, days: list[date], size: int) -> list[list[date]]:
    """Runs of at most `size` dates whose windows follow one another (a skipped date starts a new run)."""
    from dagspec.runner import window_of_day

    out: list[list[date]] = []
    end = None
    for d in days:
        window = window_of_day(pipeline, d)
        if not out or len(out[-1]) >= size or window.start != end:
            out.append([])
        out[-1].append(d)
        end = window.end
    return out


def alert_success(pipeline: Pipeline, resolver: Resolver, done: list[tuple[date, str, dict]]) -> None:
    """One success alert for the whole command (every date of a backfill in it), sent when no date failed."""
    from dagspec.alerts_runs import deliver, success_event, wants

    if not wants(pipeline, "success"):
        return
    publishes = [s.id for s in pipeline.steps if s.kind == "publish"]
    published: dict[str, dict] = {}
    for _day, _run_id, results in done:
        for step_id in publishes:
            published.setdefault(step_id, {}).update(results.get(step_id) or {})
    run_ids = ", ".join(run_id[:12] for _, run_id, _ in done[:3]) + (" ..." if len(done) > 3 else "")
    deliver(pipeline, success_event(pipeline, f"dagspec (local) {run_ids}", [d.isoformat() for d, _, _ in done],
                                    published, ""), resolver)


def run_gaps(pipeline: Pipeline, resolver: Resolver, window: Window, day: date) -> list[Batch]:
    """The lookback's gaps before `day`, computed once for the run before its first step."""
    from dagspec.lookback import gap_batches
    from dagspec.store import Store

    if not pipeline.lookback:
        return []
    store = Store.from_connection(resolver(pipeline.store.conn_id))
    return gap_batches(pipeline, store, window, day, pipeline.lookback)


def own_keys(pipeline: Pipeline, window: Window, days: list[date]) -> list[Key]:
    """What a run of these dates (one, or a chunk's) is recorded as: the dates, or each interval of them at a
    sub-daily grain (which the lookback and `backfill --local` then judge one by one)."""
    if pipeline.grain_cron is None:
        return list(days)
    return [b.key for b in pipeline.batches_of(window)]


class RunRecord:
    """How one date's run goes, kept in the store (there is no Airflow database here) for `backfill --local`
    and the lookback: 'running' with its id and start time before the first step, each step's state as it
    moves, then how it ended; the same for each earlier date it heals. A run killed on the way leaves
    'running', which is never taken as done."""

    def __init__(self, pipeline: Pipeline, resolver: Resolver, day: date, healed: list[Key] | None = None,
                 own: list[Key] | None = None):
        import uuid
        from datetime import datetime

        self.pipeline, self.resolver, self.day = pipeline, resolver, day
        self._store: Store | None = None
        self.days = [*(healed or []), *(own or [day])]
        self.about = {"run_id": uuid.uuid4().hex, "started_at": datetime.now(UTC).isoformat(),
                      "pid": os.getpid(), "steps": {}}
        if pipeline.lookback:  # which run healed a date; a pipeline without a lookback keeps its records of old
            self.about["run_date"] = day.isoformat()
        self._write("running")

    def step(self, step_id: str, state: str) -> None:
        self.about["steps"][step_id] = state
        # Each step's progress rewrites every date of the chunk: atomic but not fsynced (the start and the end
        # are), which was most of a chunked run's per-date cost.
        self._write("running", durable=False)

    def finish(self, state: str, error: str | None = None) -> None:
        from datetime import datetime

        self.about["ended_at"] = datetime.now(UTC).isoformat()
        self._write(state, error)

    def _write(self, state: str, error: str | None = None, durable: bool = True) -> None:
        from dagspec.store import Store

        try:
            if self._store is None:  # resolved once per run, not once per step
                self._store = Store.from_connection(self.resolver(self.pipeline.store.conn_id))
            # A chunk's start and end records reach the disk in one flush after all of them, not two per date.
            each = durable and len(self.days) == 1
            for day in self.days:
                self._store.record_run(self.pipeline.dag_id, day, state, error, durable=each, **self.about)
            if durable and not each:
                self._store.sync_records()
        except Exception as exc:  # the run's own outcome stands; only the record is missing
            logging.getLogger("dagspec").warning("could not record the run of %s %s: %s", self.pipeline.dag_id,
                                                 self.day, exc)


def _error_summary(exc: Exception | str, pipeline: Pipeline, resolver: Resolver) -> str:
    """An error without the secrets of the pipeline's connections; an unexpected one also short."""
    from dagspec.alerts import pipeline_secrets, summarize_error
    from dagspec.secrets import scrub_known

    if isinstance(exc, str):
        return scrub_known(exc, pipeline_secrets(pipeline, resolver))
    return summarize_error(exc, pipeline_secrets(pipeline, resolver))
