"""`dagspec sample-data`: the bundled sample source database."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from dagspec.cli.common import err
from dagspec.paths import data_home


def sample_data(
    path: Path = typer.Option(None, help="SQLite file (default: $DAGSPEC_HOME/source.db)."),
    force: bool = typer.Option(False, help="Rebuild even if it exists."),
    end: datetime = typer.Option(None, formats=["%Y-%m-%d"], help="Last day of orders (default: yesterday, UTC). "
                                 "The tests use --end 2025-12-31."),
    days: int = typer.Option(365, min=1, max=3660, help="Days of orders, ending on --end."),
    extend: bool = typer.Option(False, "--extend", help="Keep the sample and append the days after its last one up "
                                "to --end (default: today, UTC): what a demo left running past midnight needs."),
) -> None:
    """Create the bundled sample source database (customers and `--days` of orders up to `--end`),
    deterministically: one window, one set of bytes."""
    from dagspec.sample_data import build, window, window_of, yesterday

    target = path or data_home() / "source.db"
    if extend:
        from dagspec.sample_data import extend as extend_sample
        from dagspec.sample_data import today

        through = end.date() if end else today()
        try:
            added = extend_sample(target, through)
        except ValueError as exc:
            err.print(str(exc))
            raise typer.Exit(2) from None
        err.print(f"sample data at {target}: {added:,} orders added, now up to {window_of(target)[1]}")
        return
    wanted = window(end.date() if end else yesterday(), days)
    if target.exists() and not force:
        found = window_of(target)
        if found == wanted:
            err.print(f"sample data already at {target}, {found[0]} to {found[1]} (use --force to rebuild)")
            return
        # A demo started again days later needs orders up to its new yesterday, or its first runs find none.
        err.print(f"sample data at {target} covers {' to '.join(map(str, found)) if found else 'nothing readable'}: "
                  f"rebuilding it for {wanted[0]} to {wanted[1]}")
    with err.status(f"writing sample data to {target} ..."):
        sample = build(target, end=wanted[1], days=days)
    err.print(f"sample data: {sample.customers:,} customers, {sample.orders:,} orders from {sample.first_day} to "
              f"{sample.last_day} -> {target}")
