"""`dagspec validate` and `dagspec list`: the definitions folder (or named files) checked and listed."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from dagspec.cli.common import err, out
from dagspec.cli.tables import fitting_table
from dagspec.paths import definitions_dir
from dagspec.spec.bundles import key_of
from dagspec.spec.errors import Problem, printable
from dagspec.spec.transform_tests import tests_file_problems


def validate(paths: list[Path] | None = typer.Argument(None, help="Files or folders (default: dags/definitions)."),
             write_stubs: bool = typer.Option(False, "--write-stubs", help="Also write each invalid definition's "
                                              "Airflow error stub (into _definition_errors/ beside the folder, or "
                                              "$DAGSPEC_ERRORS_DIR): for a DAGs folder Airflow cannot write, "
                                              "run in CI and commit the stubs."),
             connections: bool = typer.Option(True, "--connections/--no-connections", help="Check that every "
                                              "connection a definition names exists (when Airflow's connection "
                                              "store can be read from here).")) -> None:
    """Check definitions; one line per problem (file: JSON path: message (fix)), non-zero exit if any."""
    from dagspec.error_stubs import sync_error_stubs
    from dagspec.spec.discovery import load_in_place, relative_name, scan, shared_folders
    from dagspec.spec.errors import DefinitionError
    from dagspec.spec.folder import claim_of, folder_problems
    from dagspec.spec.history_owners import unpublished_history

    problems = 0
    valid = 0
    checked: list[tuple[Path, Path | None]] = []  # valid definitions, and what their names are shown relative to
    folders = [p for p in (paths or [definitions_dir()]) if p.is_dir()]
    files = [p for p in (paths or []) if not p.is_dir()]
    for folder in folders:  # a folder also gets the cross-file check (duplicate dag ids)
        good, bad = scan(folder, check_sql=True)
        _warn_all(unpublished_history({relative_name(path, folder.parent): p for path, p in good.items()}))
        valid += len(good)
        checked += [(path, folder.parent) for path in good]
        problems += _print_all(tests_file_problems(folder, good))
        if write_stubs:  # the loader's own verdict (it does not parse SQL), so a stub never sits beside a DAG
            try:
                stubs = sync_error_stubs(folder, scan(folder)[1], strict=True)
            except OSError as exc:
                err.print(f"cannot write the error stubs of {folder.resolve()}: {exc.strerror or exc} "
                          f"({exc.filename}); set DAGSPEC_ERRORS_DIR to a writable folder")
                raise typer.Exit(2) from None
            err.print(f"error stubs of {folder.resolve()} in {stubs.resolve()}")
        for error in bad.values():
            for problem in error.problems:
                print(problem, flush=True)
                problems += 1
    claims = {}
    for path in files:
        try:
            pipeline = load_in_place(path, shared_folders(), check_sql=True)
            claims[str(path)] = claim_of(str(path), pipeline)
            problems += _print_all(tests_file_problems(None, {path: pipeline}))
        except DefinitionError as exc:
            for problem in exc.problems:
                print(problem, flush=True)
                problems += 1
    refused = folder_problems(claims.values())  # files named together are checked against each other too
    valid += len(claims) - len(refused)
    checked += [(Path(name), None) for name in claims if name not in refused]
    for found in refused.values():
        for problem in found:
            print(problem, flush=True)
            problems += 1
    if connections and checked:
        from dagspec.cli.connection_check import missing_connections, store_unreadable

        reason = store_unreadable()
        if reason is not None:
            err.print(f"connections not checked: {reason}")
        else:
            for line in [line for path, base in checked for line in missing_connections([path], base)]:
                print(line, flush=True)
                problems += 1
    err.print(f"{valid} valid definition(s), {problems} problem(s)")
    raise typer.Exit(1 if problems else 0)


def _warn_all(found: list[Problem]) -> None:
    """Findings that do not fail validate (the run may still work): on stderr, after the word warning."""
    for problem in found:
        err.print(Text(f"warning: {problem}", "yellow"))


def _print_all(found: list[Problem]) -> int:
    for problem in found:
        print(problem, flush=True)
    return len(found)


def list_definitions(folder: Path = typer.Option(None, help="Definitions folder (default: dags/definitions).")) -> None:
    """Every definition with its DAG id, schedule, steps, and whether it is valid."""
    from dagspec.spec.discovery import scan

    folder = folder or definitions_dir()
    good, bad = scan(folder)
    table = fitting_table("file", "dag_id", "schedule", "steps", "status", right=("steps",))
    for path in sorted({*good, *bad}):
        name = Text(printable(key_of(path, folder)))
        if path in good:
            p = good[path]
            table.add_row(name, p.dag_id, Text(str(p.schedule)), str(len(p.steps)), "[green]valid[/]")
        else:
            table.add_row(name, "", "", "", f"[red]{len(bad[path].problems)} problem(s)[/]")
    out.print(table)
