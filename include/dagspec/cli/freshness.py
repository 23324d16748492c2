"""`dagspec freshness`: which tables are stale."""

from __future__ import annotations

import typer
from rich.markup import escape

from dagspec.cli.common import cli_resolver, err, find_definition, out
from dagspec.cli.tables import fitting_table


def freshness(
    dag_id: str | None = typer.Argument(None, help="One pipeline (default: every definition with 'freshness')."),
    max_age_hours: float | None = typer.Option(None, "--max-age-hours", help="Override the definition's limit."),
    alert: bool = typer.Option(False, "--alert", help="Also send the definition's 'stale' alerts, on a change of "
                               "state only (what the <dag_id>__freshness DAG does; for a cron without Airflow)."),
) -> None:
    """Say which tables are stale: their newest staged partition is older than the definition allows."""
    from dagspec.freshness import check_freshness
    from dagspec.freshness_alerts import run_freshness_check
    from dagspec.paths import definitions_dir
    from dagspec.spec.discovery import scan

    if dag_id:
        pipelines = [find_definition(dag_id)[1]]
    else:
        good, _ = scan(definitions_dir())
        pipelines = [p for p in good.values() if p.freshness]
    table = fitting_table("dag_id", "table", "latest partition", "rows", "age (h)", "max (h)", "status",
                          right=("rows", "age (h)", "max (h)"))
    if alert and max_age_hours is not None:
        err.print("[red]--alert checks against the definition's own limit: drop --max-age-hours[/]")
        raise typer.Exit(2)
    stale = 0
    for pipeline in pipelines:
        try:
            if alert and pipeline.freshness:
                verdicts = run_freshness_check(pipeline, resolver=cli_resolver()).verdicts
            else:
                verdicts = check_freshness(pipeline, max_age_hours=max_age_hours, resolver=cli_resolver())
        except ValueError as exc:
            err.print(f"[red]{escape(str(exc))}[/] (use --max-age-hours)")
            raise typer.Exit(2) from None
        for v in verdicts:
            stale += v.stale
            table.add_row(v.dag_id, v.table, v.latest.display if v.latest else "-", "-" if v.rows is None else f"{v.rows:,}",
                          "-" if v.age_hours is None else f"{v.age_hours:.1f}", f"{v.max_age_hours:g}",
                          "[red]stale[/]" if v.stale else "[green]fresh[/]")
    out.print(table)
    raise typer.Exit(1 if stale else 0)
