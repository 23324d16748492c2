"""What every command shares: its consoles, finding a definition, reading a date, logging, connections."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import typing
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from dagspec.paths import definitions_dir
from dagspec.spec.errors import printable

if TYPE_CHECKING:
    from dagspec.connections import Resolver
    from dagspec.spec.bundles import Folders
    from dagspec.spec.model import Pipeline

out = Console()
err = Console(stderr=True)
# Reports that quote file names and partitions verbatim: no highlighting, no wrapping inside a name.
plain_out = Console(highlight=False, soft_wrap=True)
plain_err = Console(stderr=True, highlight=False, soft_wrap=True)


FOLDER_OPTIONS = (  # (parameter, flag, environment variable, what it holds)
    ("definitions", "--definitions", "DAGSPEC_DEFINITIONS", "Definitions folder"),
    ("sql_dir", "--sql-dir", "DAGSPEC_SQL_DIR", "SQL files of transforms and model data"),
    ("expectations_dir", "--expectations-dir", "DAGSPEC_EXPECTATIONS_DIR", "Great Expectations suite files"),
)


def with_folders(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the --definitions, --sql-dir and --expectations-dir options (each with its environment
    variable as the alternative). They set the variables every folder lookup (dagspec.paths) reads, so each
    part of the command sees the same folders."""
    signature = inspect.signature(command)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Path | None, default=typer.Option(
        None, flag, envvar=variable, show_envvar=True, file_okay=False, help=f"{what} (default: this project's).",
        rich_help_panel="Folders")) for name, flag, variable, what in FOLDER_OPTIONS]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The variables are the command's, not the process's: a second command in the same process (a test
        # runner, a notebook) must not inherit the first one's folders, so each is put back afterwards.
        before = {variable: os.environ.get(variable) for _, _, variable, _ in FOLDER_OPTIONS}
        try:
            for name, _, variable, _ in FOLDER_OPTIONS:
                folder = kwargs.pop(name, None)
                if folder is not None:
                    os.environ[variable] = str(folder.resolve())
            return command(*args, **kwargs)
        finally:
            for variable, value in before.items():
                if value is None:
                    os.environ.pop(variable, None)
                else:
                    os.environ[variable] = value

    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**typing.get_type_hints(command), **{p.name: p.annotation for p in extra}}
    return wrapper


def find_definition(dag_id: str) -> tuple[Path, Pipeline]:
    """The valid definition of ``dag_id`` in the definitions folder; exit 2 saying why when there is none."""
    from dagspec.spec.discovery import scan

    good, bad = scan(definitions_dir())
    for path, pipeline in good.items():
        if pipeline.dag_id == dag_id:
            return path, pipeline
    for path, error in bad.items():
        if path.stem == dag_id:
            err.print(f"[red]{escape(printable(path.name))} is invalid:[/]\n{escape(str(error))}")
            raise typer.Exit(2)
    err.print(f"[red]no definition with dag_id {escape(repr(dag_id))} in {escape(str(definitions_dir().resolve()))}[/]")
    raise typer.Exit(2)


def folders_for(definition: Path) -> Folders:
    """Where a found definition's SQL and suites are: its bundle's, else the shared (or --sql-dir) folders."""
    from dagspec.spec.bundles import folders_of
    from dagspec.spec.discovery import shared_folders

    return folders_of(definition, shared_folders())


def parse_date(text: str) -> date:
    """A YYYY-MM-DD option; exit 2 on anything else."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]{escape(repr(text))} is not a date; use YYYY-MM-DD[/]")
        raise typer.Exit(2) from None


def date_range(pipeline: Pipeline | None, first: date, last: date, *, first_flag: str, last_flag: str) -> list[date]:
    """Every date from `first` to `last`, inclusive; exit 2 when the range is reversed or leaves the
    definition's start_date/end_date (no run is made for a date the scheduler would never make one for).
    Without a definition here (a remote backfill), Airflow has the last word on the bounds."""
    if last < first:
        err.print(f"[red]{last_flag} {last} is before {first_flag} {first}[/]: swap them ({first_flag} {last} "
                  f"{last_flag} {first})")
        raise typer.Exit(2)
    if pipeline is None:
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]
    start, end = pipeline.start_date, pipeline.end_date
    outside = [d for d in (first, last) if d < start or (end is not None and d > end)]
    if outside:
        bounds = f"{start} .. {end}" if end is not None else f"from {start} on"
        err.print(f"[red]{escape(pipeline.dag_id)} runs {bounds} (start_date/end_date in its definition): "
                  f"{outside[0]} is outside[/]; pick dates in that range, or widen start_date/end_date "
                  f"in the definition")
        raise typer.Exit(2)
    return firing_days(pipeline, [first + timedelta(days=i) for i in range((last - first).days + 1)])


def firing_days(pipeline: Pipeline, days: list[date]) -> list[date]:
    """The dates a sub-daily cron fires on: a weekday-only schedule's weekends are left out with a note, and
    a range without any such date exits 2 saying why (a daily or longer grain keeps every date)."""
    from dagspec.subdaily import no_interval_reason

    expr = pipeline.grain_cron
    if expr is None:
        return days
    reasons = {d: r for d in days if (r := no_interval_reason(expr, d, pipeline.timezone))}
    kept = [d for d in days if d not in reasons]
    if not kept:
        err.print(f"[red]{escape(pipeline.dag_id)}: {escape(reasons[days[0]])}[/]"
                  if len(days) == 1 else
                  f"[red]{escape(pipeline.dag_id)}: schedule {escape(repr(expr))} fires on none of {named_dates(days)}[/]")
        raise typer.Exit(2)
    if reasons:
        err.print(f"{escape(pipeline.dag_id)}: skipping {len(reasons)} date(s) schedule {escape(repr(expr))} "
                  f"never fires on: {named_dates(set(reasons))}", soft_wrap=True)
    return kept


def named_dates(days: list[date] | set[date]) -> str:
    """'2025-01-01..2025-01-31, 2025-03-04': every date a message is about, consecutive ones as one range."""
    runs: list[list[date]] = []
    for d in sorted(days):
        if runs and d - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    return ", ".join(f"{r[0]}..{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def setup_logging(verbose: bool) -> None:
    """dagspec's log on stderr, INFO (DEBUG with ``verbose``), without any connection's secret."""
    from dagspec.secrets import ScrubFilter

    # Rich's handler wraps each message to the width left of its time and level columns: fine on a terminal,
    # but it cuts every line of a log file or a CI log (and the check tables in messages) into pieces.
    handler: logging.Handler = RichHandler(console=err, show_path=False)
    if not err.is_terminal:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(ScrubFilter())  # what reaches stderr loses every form of every connection's secret
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # dagspec's own logger keeps this handler: importing Airflow later (connections, a model's registry)
    # replaces the root's handlers with Airflow's, which write to stdout without the secret filter.
    ours = logging.getLogger("dagspec")
    ours.handlers, ours.propagate = [handler], False
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' download/upload bars (GX's own are off in its context)


def cli_resolver() -> Resolver:
    """Connections for commands run from a shell: env, then Airflow's own store, then the embedded defaults."""
    from dagspec.airflow.connections import cli_resolver as resolver

    return resolver
