"""Run steps of a pipeline for one window: the single entry point for Airflow tasks and the CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from dagspec.connections import Resolver, env_resolver
from dagspec.plan import plan_of
from dagspec.spec.bundles import Folders
from dagspec.spec.model import Pipeline
from dagspec.spec.schedule import window_for
from dagspec.stages import RunContext, stage_for
from dagspec.subdaily import no_interval_reason
from dagspec.windows import Batch, Window, utc


def window_of_day(pipeline: Pipeline, day: date) -> Window:
    """The window a scheduled run for `day` covers (what Airflow's data interval starting that day is). A day a
    sub-daily cron never fires on (a weekday-only schedule's Saturday) is refused saying so, not as an empty window."""
    expr = pipeline.grain_cron
    reason = expr and no_interval_reason(expr, day, pipeline.timezone)
    if reason:
        raise ValueError(f"{pipeline.dag_id}: {reason}")
    return Window(*window_for(pipeline.schedule, day, pipeline.timezone))


def run_step(
    pipeline: Pipeline,
    step_id: str,
    start: datetime,
    end: datetime,
    *,
    resolver: Resolver = env_resolver,
    log: logging.Logger | None = None,
    folders: Folders | None = None,
    reports_url: str | None = None,
    gaps: Sequence[Batch] = (),
) -> Any:
    """``folders``: where the definition's SQL and suites are (its bundle's); the shared folders when None.
    ``reports_url``: where a browser reaches the reports folder (the UI's reports route).
    ``gaps``: earlier batches the run also processes (dagspec.lookback), the same for every step of a run."""
    ctx = RunContext(pipeline, Window(utc(start), utc(end)), resolver, log or logging.getLogger("dagspec"),
                     step_id=step_id, reports_url=reports_url, gaps=list(gaps))
    if folders is not None:
        ctx.sql_root, ctx.suites_root = folders.sql, folders.suites
    step = pipeline.step(step_id)
    try:
        try:
            return stage_for(step.kind)(ctx, step)
        except Exception as exc:
            scrubbed = _scrubbed(exc)
            if scrubbed is None:
                raise
        # Raised outside the except block: the original (which holds the secret) is not even its context, so
        # no traceback printer (Airflow's task log, the CLI) can reach it.
        raise scrubbed
    finally:
        ctx.close()


def _scrubbed(exc: Exception) -> Exception | None:
    """A StepFailed without any form of a known secret, or None when `exc`'s message holds none."""
    from dagspec.errors import StepFailed
    from dagspec.secrets import scrub_known

    text = str(exc)
    clean = scrub_known(text)
    if clean == text:
        return None
    return type(exc)(clean) if isinstance(exc, StepFailed) else StepFailed(f"{type(exc).__name__}: {clean}")


def run_pipeline(
    pipeline: Pipeline,
    window: Window,
    *,
    resolver: Resolver = env_resolver,
    log: logging.Logger | None = None,
    on_step: Callable[[str, str, Any], None] | None = None,
    folders: Folders | None = None,
    gaps: Sequence[Batch] = (),
) -> dict[str, Any]:
    """Every step in dependency order, in this process; stops at the first failure (nothing after it runs).
    A step with nothing to do yet (StepSkipped) is reported "skipped" with its reason, and so is every step that
    needs it, as in Airflow; the others run.
    ``gaps``: earlier batches every step also processes (dagspec.lookback), computed once by the caller."""
    from dagspec.errors import StepSkipped

    plan = plan_of(pipeline)
    upstream = plan.upstream()
    results: dict[str, Any] = {}
    skipped: set[str] = set()
    for step_id in plan.order:
        if any(u in skipped for u in upstream[step_id]):
            skipped.add(step_id)
            results[step_id] = f"skipped: {', '.join(u for u in upstream[step_id] if u in skipped)} skipped"
            if on_step:
                on_step(step_id, "skipped", results[step_id])
            continue
        if on_step:
            on_step(step_id, "running", None)
        try:
            results[step_id] = run_step(pipeline, step_id, window.start, window.end, resolver=resolver, log=log,
                                         folders=folders, gaps=gaps)
        except StepSkipped as skip:
            skipped.add(step_id)
            results[step_id] = f"skipped: {skip}"
            (log or logging.getLogger("dagspec")).warning("%s skipped: %s", step_id, skip)
            if on_step:
                on_step(step_id, "skipped", results[step_id])
            continue
        if on_step:
            on_step(step_id, "success", results[step_id])
    return results
