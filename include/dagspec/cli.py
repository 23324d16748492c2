"""`dagspec`: validate definitions, list them, run one date in-process, print the JSON Schema."""

from __future__ import annotations

import logging
import os
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from dagspec.paths import data_home, definitions_dir, schema_file
from dagspec.spec.errors import printable

app = typer.Typer(no_args_is_help=True, add_completion=False, help="JSON definitions in, Airflow pipelines out.")
app.add_typer(__import__("dagspec.cli_models", fromlist=["app"]).app, name="models")  # dagspec models list|rollback
app.command("adopt")(__import__("dagspec.cli_adopt", fromlist=["adopt"]).adopt)
app.command("import")(__import__("dagspec.cli_import", fromlist=["import_seeds"]).import_seeds)
app.command("init")(__import__("dagspec.cli_init", fromlist=["init"]).init)
out = Console()
err = Console(stderr=True)


def _definition_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths or [definitions_dir()]:
        files.extend(sorted(p.glob("*.json")) if p.is_dir() else [p])
    return files


@app.command()
def validate(paths: Optional[list[Path]] = typer.Argument(None, help="Files or folders (default: dags/definitions).")):
    """Check definitions; one line per problem (file: JSON path: message (fix)), non-zero exit if any."""
    from dagspec.spec.discovery import scan
    from dagspec.spec.errors import DefinitionError
    from dagspec.spec.folder import claim_of, folder_problems
    from dagspec.spec.load import load_definition

    problems = 0
    valid = 0
    folders = [p for p in (paths or [definitions_dir()]) if p.is_dir()]
    files = [p for p in (paths or []) if not p.is_dir()]
    for folder in folders:  # a folder also gets the cross-file check (duplicate dag ids)
        good, bad = scan(folder, check_sql=True)
        valid += len(good)
        for error in bad.values():
            for problem in error.problems:
                print(problem, flush=True)
                problems += 1
    claims = {}
    for path in files:
        try:
            claims[str(path)] = claim_of(str(path), load_definition(path, sql_dir=_sql_dir(), check_sql=True))
        except DefinitionError as exc:
            for problem in exc.problems:
                print(problem, flush=True)
                problems += 1
    refused = folder_problems(claims.values())  # files named together are checked against each other too
    valid += len(claims) - len(refused)
    for found in refused.values():
        for problem in found:
            print(problem, flush=True)
            problems += 1
    err.print(f"{valid} valid definition(s), {problems} problem(s)")
    raise typer.Exit(1 if problems else 0)


def _sql_dir() -> Path:
    from dagspec.paths import sql_dir

    return sql_dir()


@app.command("list")
def list_definitions(folder: Path = typer.Option(None, help="Definitions folder (default: dags/definitions).")):
    """Every definition with its DAG id, schedule, steps, and whether it is valid."""
    from dagspec.spec.discovery import scan

    good, bad = scan(folder or definitions_dir())
    table = Table("file", "dag_id", "schedule", "steps", "status")
    for column in table.columns[:3]:
        column.no_wrap = True
    for path in sorted({*good, *bad}):
        if path in good:
            p = good[path]
            table.add_row(Text(printable(path.name)), p.dag_id, Text(str(p.schedule)), str(len(p.steps)), "[green]valid[/]")
        else:
            table.add_row(Text(printable(path.name)), "", "", "", f"[red]{len(bad[path].problems)} problem(s)[/]")
    out.print(table)


def _find(dag_id: str):
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


def _setup_logging(verbose: bool) -> None:
    from dagspec.secrets import ScrubFilter

    handler = RichHandler(console=err, show_path=False)
    handler.addFilter(ScrubFilter())  # what reaches stderr loses every form of every connection's secret
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("dagspec").setLevel(logging.DEBUG if verbose else logging.INFO)
    os.environ.setdefault("TQDM_DISABLE", "1")  # GX draws a progress bar per metric otherwise


@app.command()
def run(
    dag_id: str,
    day: str = typer.Option(..., "--date", help="Batch date YYYY-MM-DD: the run whose data interval starts that day."),
    to: Optional[str] = typer.Option(None, "--to", help="Run every date from --date up to this one (inclusive)."),
    verbose: bool = typer.Option(False, "-v", "--verbose"),
):
    """Run every step for one date (or a range) in this process: no scheduler; stops at the first failed date."""
    _setup_logging(verbose)
    _, pipeline = _find(dag_id)
    first = _parse_date(day)
    last = _parse_date(to) if to else first
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    if run_days(dag_id, pipeline, days, keep_going=False):
        raise typer.Exit(1)
    out.print(f"[green]{dag_id}: {len(days)} date(s) done[/] ({days[0]} .. {days[-1]})")


def run_days(dag_id: str, pipeline, days: list[date], *, keep_going: bool) -> list[tuple[date, str]]:
    """Every step of each date's window in this process, with a progress bar; returns (date, error) per failure.
    `keep_going` moves on to the next date after a failure (a backfill), else stops there."""
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from dagspec.runner import run_pipeline, window_of_day
    from dagspec.spec.graph import topological
    from dagspec.stages import StepFailed

    order = topological(pipeline)
    resolver = cli_resolver()
    failures: list[tuple[date, str]] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err) as progress:
        bar = progress.add_task(dag_id, total=len(order) * len(days))
        for d in days:
            completed = progress.tasks[0].completed
            record = RunRecord(pipeline, resolver, d)

            def on_step(step_id: str, state: str, _result, d=d, record=record) -> None:
                record.step(step_id, state)
                if state == "running":
                    progress.update(bar, description=f"{dag_id} {d} · {step_id}")
                else:
                    progress.advance(bar)

            try:
                run_pipeline(pipeline, window_of_day(pipeline, d), on_step=on_step, resolver=resolver)
                record.finish("success")
            except Exception as exc:
                # A StepFailed is already worded for people; both still lose every form of every secret.
                text = _error_summary(str(exc) if isinstance(exc, StepFailed) else exc, pipeline, resolver)
                record.finish("failed", text)
                failures.append((d, text))
                progress.update(bar, completed=completed + len(order))
                # Escaped: an error quoting '[/]' (a password's characters, a value) is text, not Rich markup.
                progress.console.print(f"[red]{dag_id} {d}: failed[/]: {escape(text)}")
                if not keep_going:
                    break
    return failures


class RunRecord:
    """How one date's run goes, kept in the store (there is no Airflow database here) for `backfill --local`:
    'running' with its id and start time before the first step, each step's state as it moves, then how it
    ended. A run killed on the way leaves 'running', which is never taken as done."""

    def __init__(self, pipeline, resolver, day: date):
        import uuid
        from datetime import datetime, timezone

        self.pipeline, self.resolver, self.day = pipeline, resolver, day
        self.about = {"run_id": uuid.uuid4().hex, "started_at": datetime.now(timezone.utc).isoformat(),
                      "pid": os.getpid(), "steps": {}}
        self._write("running")

    def step(self, step_id: str, state: str) -> None:
        self.about["steps"][step_id] = state
        self._write("running")

    def finish(self, state: str, error: str | None = None) -> None:
        from datetime import datetime, timezone

        self.about["ended_at"] = datetime.now(timezone.utc).isoformat()
        self._write(state, error)

    def _write(self, state: str, error: str | None = None) -> None:
        from dagspec.store import Store

        try:
            store = Store.from_connection(self.resolver(self.pipeline.store.conn_id))
            store.record_run(self.pipeline.dag_id, self.day, state, error, **self.about)
        except Exception as exc:  # the run's own outcome stands; only the record is missing
            logging.getLogger("dagspec").warning("could not record the run of %s %s: %s", self.pipeline.dag_id,
                                                 self.day, exc)


def _error_summary(exc: Exception | str, pipeline, resolver) -> str:
    """An error without the secrets of the pipeline's connections; an unexpected one also short."""
    from dagspec.alerts import pipeline_secrets, summarize_error
    from dagspec.secrets import scrub_known

    if isinstance(exc, str):
        return scrub_known(exc, pipeline_secrets(pipeline, resolver))
    return summarize_error(exc, pipeline_secrets(pipeline, resolver))


def cli_resolver():
    """Connections for commands run from a shell: env, then Airflow's own store, then the embedded defaults."""
    from dagspec.airflow.connections import cli_resolver as resolver

    return resolver


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        err.print(f"[red]{escape(repr(text))} is not a date; use YYYY-MM-DD[/]")
        raise typer.Exit(2) from None


@app.command()
def schema(
    write: bool = typer.Option(False, "--write", help=f"Write it to {schema_file()}."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the published file is out of date."),
):
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


@app.command("sample-data")
def sample_data(
    path: Path = typer.Option(None, help="SQLite file (default: $DAGSPEC_HOME/source.db)."),
    force: bool = typer.Option(False, help="Rebuild even if it exists."),
):
    """Create the bundled sample source database (customers and a year of orders), deterministically."""
    from dagspec.sample_data import build

    target = path or data_home() / "source.db"
    if target.exists() and not force:
        err.print(f"sample data already at {target} (use --force to rebuild)")
        return
    with err.status(f"writing sample data to {target} ..."):
        counts = build(target)
    err.print(f"sample data: {counts['customers']:,} customers, {counts['orders']:,} orders -> {target}")


from dagspec.cli_backfill import backfill, freshness  # noqa: E402  (they reuse the helpers above)

app.command()(backfill)
app.command()(freshness)



@app.command("sync")
def sync_definitions(
    uri: str = typer.Argument(..., help="s3://bucket/prefix or gs://bucket/prefix holding *.json definitions."),
    conn_id: str = typer.Option(..., "--conn-id", help="Connection of the bucket (aws or google_cloud_platform)."),
    to: Path = typer.Option(None, "--to", help="Definitions folder (default: dags/definitions)."),
):
    """Bring new and changed definitions from a bucket prefix; invalid ones never go live. Exit 1 if any is rejected."""
    from dagspec.sync import sync

    report = sync(uri, conn_id, to or definitions_dir(), sql_dir=_sql_dir(), resolver=cli_resolver())
    for name in report.added + report.updated + report.deleted:
        state = "added" if name in report.added else "updated" if name in report.updated else "deleted"
        print(f"{state}: {name}", flush=True)
    for problems in report.rejected.values():
        for problem in problems:
            print(f"rejected: {problem}", flush=True)
    err.print(report.summary())
    raise typer.Exit(1 if report.rejected else 0)


if __name__ == "__main__":
    app()
