"""`dagspec sample-data`: the bundled sample source database."""

from __future__ import annotations

from pathlib import Path

import typer

from dagspec.cli.common import err
from dagspec.paths import data_home


def sample_data(
    path: Path = typer.Option(None, help="SQLite file (default: $DAGSPEC_HOME/source.db)."),
    force: bool = typer.Option(False, help="Rebuild even if it exists."),
) -> None:
    """Create the bundled sample source database (customers and a year of orders), deterministically."""
    from dagspec.sample_data import build

    target = path or data_home() / "source.db"
    if target.exists() and not force:
        err.print(f"sample data already at {target} (use --force to rebuild)")
        return
    with err.status(f"writing sample data to {target} ..."):
        counts = build(target)
    err.print(f"sample data: {counts['customers']:,} customers, {counts['orders']:,} orders -> {target}")
