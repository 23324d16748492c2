"""`python -m dagspec.cli`: the same app as the `dagspec` command."""

from dagspec.cli import app

app()
