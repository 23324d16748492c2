"""What every command shares: its consoles, finding a definition, reading a date, logging, connections."""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from dagspec.paths import definitions_dir
from dagspec.spec.errors import printable

if TYPE_CHECKING:
    from dagspec.connections import Resolver
    from dagspec.spec.model import Pipeline

out = Console()
err = Console(stderr=True)
# Reports that quote file names and partitions verbatim: no highlighting, no wrapping inside a name.
plain_out = Console(highlight=False, soft_wrap=True)
plain_err = Console(stderr=True, highlight=False, soft_wrap=True)


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
    err.print(f"[red]no definition with dag_id {escape(repr(dag_id))} in {escape(str(definitions_dir()))}[/]")
    raise typer.Exit(2)


def parse_date(text: str) -> date:
    """A YYYY-MM-DD option; exit 2 on anything else."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]{escape(repr(text))} is not a date; use YYYY-MM-DD[/]")
        raise typer.Exit(2) from None


def setup_logging(verbose: bool) -> None:
    """dagspec's log on stderr, INFO (DEBUG with ``verbose``), without any connection's secret."""
    from dagspec.secrets import ScrubFilter

    handler = RichHandler(console=err, show_path=False)
    handler.addFilter(ScrubFilter())  # what reaches stderr loses every form of every connection's secret
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("dagspec").setLevel(logging.DEBUG if verbose else logging.INFO)
    os.environ.setdefault("TQDM_DISABLE", "1")  # GX draws a progress bar per metric otherwise


def cli_resolver() -> Resolver:
    """Connections for commands run from a shell: env, then Airflow's own store, then the embedded defaults."""
    from dagspec.airflow.connections import cli_resolver as resolver

    return resolver
