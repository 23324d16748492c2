"""`dagspec run`: every step of one date (or a range) in this process."""

from __future__ import annotations

import typer

from dagspec.cli.common import date_range, find_definition, folders_for, out, parse_date, setup_logging
from dagspec.cli.local_runs import run_days


def run(
    dag_id: str,
    day: str = typer.Option(..., "--date", help="Batch date YYYY-MM-DD: the run whose data interval starts that day."),
    to: str | None = typer.Option(None, "--to", help="Run every date from --date up to this one (inclusive)."),
    chunk: int | None = typer.Option(None, "--chunk", min=1, help="Dates per run over a range: each run reads each "
                                     "source once for all of them (default: the definition's batch_size)."),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
) -> None:
    """Run every step for one date (or a range) in this process: no scheduler; stops at the first failed date.
    With a 'lookback' in the definition each date's run also heals the gaps before it."""
    setup_logging(verbose)
    path, pipeline = find_definition(dag_id)
    first = parse_date(day)
    days = date_range(pipeline, first, parse_date(to) if to else first, first_flag="--date", last_flag="--to")
    if run_days(dag_id, pipeline, days, keep_going=False, folders=folders_for(path), heal=True, chunk=chunk):
        raise typer.Exit(1)
    out.print(f"[green]{dag_id}: {len(days)} date(s) done[/] ({days[0]} .. {days[-1]})")
