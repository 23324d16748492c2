"""How `dagspec test` shows one case: a line with its verdict and, when it failed, the diff as Rich tables.
Every value from a test file or a result goes in as Text, never as markup: a cell may hold "[red]" or escapes."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text

from dagspec.cli.tables import fitting_table
from dagspec.spec.errors import printable
from dagspec.transform_tests.compare import Diff
from dagspec.transform_tests.runner import CaseResult


def shown(value: Any) -> str:
    """A cell as it reads in a test file: text quoted, null, numbers and dates as written."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return printable(repr(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime | time):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def typed(value: Any) -> str:
    """The cell with its Python type, for cells that differ only by type (5.25 as double vs decimal)."""
    kind = {Decimal: "decimal", float: "double", int: "integer", str: "string", bool: "boolean"}.get(type(value))
    return f"{shown(value)} ({kind or type(value).__name__})" if value is not None else "null"


def report(console: Console, label: str, result: CaseResult, verbose: bool) -> None:
    verdict = Text("PASS", "green") if result.passed else Text("ERROR" if result.error else "FAIL", "bold red")
    console.print(Text.assemble(verdict, " ", printable(label), " ", (printable(result.name), "bold")))
    if result.error is not None:
        where = f"{result.where}: " if result.where else ""
        fix = f" (fix: {result.fix})" if result.fix else ""
        console.print(Text(f"  {where}{result.error}{fix}", "red"))
    if result.diff is not None and not result.diff.passed:
        diff_tables(console, result.diff)
    if verbose or (result.error and result.sql):
        for sql in result.sql:
            console.print(Syntax(readable(sql, result.dialect), "sql", word_wrap=True, background_color="default"))


def readable(sql: str, dialect: str) -> str:
    """The statement sent, laid out one clause a line (sqlglot, same dialect), its parameter comment kept."""
    import sqlglot

    text, _, tail = sql.partition("\n-- parameters:")
    try:
        text = sqlglot.transpile(text, read=dialect, write=dialect, pretty=True)[0]
    except sqlglot.errors.SqlglotError:
        pass  # shown as sent
    return text + (f"\n-- parameters:{tail}" if tail else "")


def diff_tables(console: Console, diff: Diff) -> None:
    for problem in diff.column_problems:
        console.print(Text(f"  {problem}", "red"))
    if diff.column_problems:
        return
    console.print(Text(f"  {diff.produced} row(s) produced; {len(diff.missing)} missing, {len(diff.unexpected)} "
                       f"unexpected, {len(diff.changed)} with other values"))
    if diff.missing or diff.unexpected:
        table = fitting_table("", *diff.columns, title="rows", title_justify="left", show_edge=False)
        for sign, style, rows in (("-", "red", diff.missing), ("+", "green", diff.unexpected)):
            for row in rows:
                table.add_row(Text(sign, style), *(Text(shown(c), style) for c in row))
        console.print(Text("  - expected, not produced   + produced, not expected"))
        console.print(table)
    if diff.changed:
        table = fitting_table("column", "expected", "produced", title="rows with other values", title_justify="left",
                              show_edge=False)
        for i, change in enumerate(diff.changed):
            if i:
                table.add_section()
            for name, want, got in zip(diff.columns, change.expected, change.got, strict=True):
                if name in change.columns:
                    both_typed = type(want) is not type(got) and want is not None and got is not None
                    table.add_row(Text(name, "bold"), Text(typed(want) if both_typed else shown(want), "red"),
                                  Text(typed(got) if both_typed else shown(got), "green"))
                else:
                    table.add_row(Text(name, "dim"), Text(shown(want), "dim"), Text(shown(got), "dim"))
        console.print(table)
