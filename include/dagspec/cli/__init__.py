"""`dagspec`: validate definitions, list them, run one date in-process, print the JSON Schema.

The app only: each command lives in its own module, which never imports this one.
"""

import typer

from dagspec.cli import adopt, backfill, definitions, freshness, importing, init, models, run, sample_data, schema, sync
from dagspec.cli import transform_test as unit_tests
from dagspec.cli.common import with_folders

app = typer.Typer(no_args_is_help=True, add_completion=False, help="JSON definitions in, Airflow pipelines out.")
app.add_typer(models.app, name="models")
# Registered in the order `dagspec --help` lists them.
app.command("adopt")(with_folders(adopt.adopt))
app.command("import")(importing.import_seeds)
app.command("init")(init.init)
app.command()(with_folders(definitions.validate))
app.command("list")(with_folders(definitions.list_definitions))
app.command()(with_folders(run.run))
app.command()(schema.schema)
app.command("sample-data")(sample_data.sample_data)
app.command()(with_folders(backfill.backfill))
app.command()(with_folders(freshness.freshness))
app.command("sync")(with_folders(sync.sync_definitions))
app.command("test")(with_folders(unit_tests.test))

__all__ = ["app"]
