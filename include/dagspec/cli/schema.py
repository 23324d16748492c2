"""`dagspec schema`: the published JSON Schema of a definition, printed, written or checked."""

from __future__ import annotations

import sys

import typer

from dagspec.cli.common import err
from dagspec.paths import schema_file


def schema(
    write: bool = typer.Option(False, "--write", help=f"Write it to {schema_file()}."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the published file is out of date."),
) -> None:
    """Print the JSON Schema of a definition (editors use it for autocomplete and inline errors)."""
    from dagspec.spec.schema import schema_text

    text = schema_text()
    if check:
        current = schema_file().read_text() if schema_file().exists() else ""
        if current != text:
            err.print(f"[red]{schema_file()} is out of date: run `make schema`[/]")
            raise typer.Exit(1)
        return
    if write:
        schema_file().parent.mkdir(parents=True, exist_ok=True)
        schema_file().write_text(text)
        err.print(f"wrote {schema_file()}")
        return
    sys.stdout.write(text)
