"""`dagspec`: validate definitions, list them, run one date in-process, print the JSON Schema.

The app only: each command lives in its own module, which never imports this one.
"""

import typer

from dagspec.cli import adopt, backfill, definitions, freshness, importing, init, models, run, sample_data, schema, sync

app = typer.Typer(no_args_is_help=True, add_completion=False, help="JSON definitions in, Airflow pipelines out.")
app.add_typer(models.app, name="models")
# Registered in the order `dagspec --help` lists them.
app.command("adopt")(adopt.adopt)
app.command("import")(importing.import_seeds)
app.command("init")(init.init)
app.command()(definitions.validate)
app.command("list")(definitions.list_definitions)
app.command()(run.run)
app.command()(schema.schema)
app.command("sample-data")(sample_data.sample_data)
app.command()(backfill.backfill)
app.command()(freshness.freshness)
app.command("sync")(sync.sync_definitions)

__all__ = ["app"]
