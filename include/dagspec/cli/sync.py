"""`dagspec sync`: definitions brought from a bucket prefix, each checked before it goes live."""

from __future__ import annotations

from pathlib import Path

import typer

from dagspec.cli.common import cli_resolver, err
from dagspec.paths import definitions_dir, sql_dir


def sync_definitions(
    uri: str = typer.Argument(..., help="s3://bucket/prefix or gs://bucket/prefix holding *.json definitions."),
    conn_id: str = typer.Option(..., "--conn-id", help="Connection of the bucket (aws or google_cloud_platform)."),
    to: Path = typer.Option(None, "--to", help="Definitions folder (default: dags/definitions)."),
) -> None:
    """Bring new and changed definitions from a bucket prefix; invalid ones never go live. Exit 1 if any is rejected."""
    from dagspec.sync import sync

    report = sync(uri, conn_id, to or definitions_dir(), sql_dir=sql_dir(), resolver=cli_resolver())
    for name in report.added + report.updated + report.deleted:
        state = "added" if name in report.added else "updated" if name in report.updated else "deleted"
        print(f"{state}: {name}", flush=True)
    for problems in report.rejected.values():
        for problem in problems:
            print(f"rejected: {problem}", flush=True)
    err.print(report.summary())
    raise typer.Exit(1 if report.rejected else 0)
