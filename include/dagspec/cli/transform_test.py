"""`dagspec test`: run the transform unit tests written beside definitions (tests/<dag_id>.json)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from dagspec.cli.common import folders_for, plain_err, plain_out
from dagspec.paths import definitions_dir
from dagspec.spec.errors import DefinitionError, printable

if TYPE_CHECKING:
    from dagspec.spec.model import Pipeline
    from dagspec.spec.transform_tests import TransformCase
    from dagspec.transform_tests.runner import CaseResult

# Exit codes: 0 every case passed, 1 a case failed (or its SQL did), 2 a definition or test file is wrong.
FAILED, UNUSABLE = 1, 2


def test(names: list[str] | None = typer.Argument(None, metavar="DEFINITION", help="Definition files or "
                                                 "dag_ids (default: every definition of the definitions folder)."),
         warehouse: bool = typer.Option(False, "--warehouse", help="Run in each definition's own warehouse "
                                        "(PostgreSQL: in a schema made for each case and dropped after it) "
                                        "instead of an embedded DuckDB in a temp folder."),
         verbose: bool = typer.Option(False, "-v", "--verbose", help="Show the SQL each case sent.")) -> None:
    """Run each transform's SQL on the rows its tests give and compare with the rows they expect."""
    from dagspec.spec.discovery import relative_name, scan
    from dagspec.spec.transform_tests import load_tests, tests_file

    folder = definitions_dir()
    good, bad = scan(folder)
    chosen, unusable = _chosen(names, good, bad, folder)
    counts = {"passed": 0, "failed": 0}
    without: list[str] = []
    for path in chosen:
        pipeline = good[path]
        shown_name = relative_name(path, folder.parent)
        file = tests_file(path, pipeline)
        if not file.is_file():
            without.append(pipeline.dag_id)
            continue
        try:
            suite = load_tests(file, pipeline, relative_name(file, folder.parent))
        except DefinitionError as exc:
            for problem in exc.problems:
                plain_err.print(Text(str(problem), "red"))
            unusable += 1
            continue
        cases = _cases(pipeline, suite.tests, folders_for(path).sql, warehouse, shown_name)
        if cases is None:
            unusable += 1
            continue
        unusable += _report_all(cases, pipeline.dag_id, verbose, counts)
    if without and names:
        plain_err.print(Text(f"no tests for {', '.join(without)}: write them in tests/<dag_id>.json beside the "
                             "definition (README: Testing transforms)"))
    summary = f"{counts['passed']} passed, {counts['failed']} failed"
    summary += f", {unusable} unusable definition/test file(s)" if unusable else ""
    plain_out.print(Text(summary, "bold green" if not counts["failed"] and not unusable else "bold red"))
    raise typer.Exit(UNUSABLE if unusable else FAILED if counts["failed"] else 0)


def _chosen(named: list[str] | None, good: dict[Path, Pipeline], bad: dict[Path, DefinitionError],
            folder: Path) -> tuple[list[Path], int]:
    """The valid definitions to test, and how many named (or, with none named, found) could not be used."""
    unusable = 0
    if not named:
        for error in bad.values():
            for problem in error.problems:
                plain_err.print(Text(str(problem), "red"))
        return sorted(good), len(bad)
    chosen: list[Path] = []
    for name in named:
        path = Path(name)
        hits = [p for p in good if p.resolve() == path.resolve()] if path.suffix == ".json" else \
            [p for p, pipeline in good.items() if pipeline.dag_id == name]
        broken = [p for p in bad if p.resolve() == path.resolve() or p.stem == name]
        if hits:
            chosen += hits
            continue
        unusable += 1
        if broken:
            for problem in bad[broken[0]].problems:
                plain_err.print(Text(str(problem), "red"))
        else:
            plain_err.print(Text(f"{printable(name)}: no valid definition with that file or dag_id in "
                                 f"{folder.resolve()} (set --definitions for another folder)", "red"))
    return chosen, unusable


# Why --warehouse does not run on these kinds (the case's scratch tables need what they lack here).
NOT_HERE = {
    "redshift": " (not Redshift: no cluster to test against; the case's inputs would go through S3 and COPY)",
}


def _cases(pipeline: Pipeline, cases: list[TransformCase], sql_root: Path, warehouse: bool,
           shown_name: str) -> Iterable[CaseResult] | None:
    """The case results, run where asked; None (after saying why) when the warehouse cannot run them."""
    from dagspec.transform_tests.runner import REAL_WAREHOUSES, embedded_cases, warehouse_cases

    if not warehouse:
        return embedded_cases(pipeline, cases, sql_root)
    from dagspec.cli.common import cli_resolver

    conn_id = pipeline.warehouse.conn_id
    try:
        info = cli_resolver()(conn_id)
    except LookupError as exc:
        plain_err.print(Text(f"{shown_name}: {exc}", "red"))
        return None
    if info.conn_type in REAL_WAREHOUSES:
        return warehouse_cases(pipeline, cases, sql_root, info)
    if info.conn_type == "duckdb":  # the embedded kind already: a temp file spares the real one its lock
        return embedded_cases(pipeline, cases, sql_root)
    plain_err.print(Text(f"{shown_name}: warehouse {conn_id!r} is {info.conn_type!r}; --warehouse runs tests in "
                         f"PostgreSQL, DuckLake, BigQuery or DuckDB{NOT_HERE.get(info.conn_type, '')}; run without --warehouse "
                         "to use the embedded one", "red"))
    return None


def _report_all(cases: Iterable[CaseResult], dag_id: str, verbose: bool, counts: dict[str, int]) -> int:
    """Show each case as it ends and count it; returns the cases whose test file rows are wrong."""
    from dagspec.cli.case_report import report

    unusable = 0
    for result in cases:
        report(plain_out, f"{dag_id}.{result.step}", result, verbose)
        if result.where:  # the test file's rows themselves are wrong: a usage error, not a failed test
            unusable += 1
        else:
            counts["passed" if result.passed else "failed"] += 1
    return unusable
