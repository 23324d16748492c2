"""Hostile transform test files: rows holding SQL, Jinja, placeholders and terminal escapes are data (bound or
loaded, never pasted into SQL nor rendered), hostile column names are refused, and the report shows every
value literally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagspec.cli import app

HOSTILE = ["'); DROP TABLE raw.orders; --", "{{ 7 * 7 }}", "{% raw %}x", "$1", "%(from_date)s", ":from_date", "?",
           "\"quoted\" 'single' `back`", "line\nbreak, comma", "[red]markup[/red]", "\x1b[31mred\x1b[0m", "", "\\"]
ECHO = "SELECT id, note FROM {{ ref('extract_notes') }}"


def folder_with(tmp_path: Path, monkeypatch, tests: dict) -> Path:
    folder = tmp_path / "definitions"
    (folder / "tests").mkdir(parents=True)
    definition = {"dag_id": "t_hostile", "start_date": "2025-01-01", "steps": [
        {"id": "extract_notes", "kind": "extract", "source": {"table": "notes"}, "target": {"schema": "raw",
                                                                                            "table": "notes"}},
        {"id": "echo", "kind": "transform", "query": ECHO, "inputs": ["extract_notes"]}]}
    (folder / "t_hostile.json").write_text(json.dumps(definition))
    (folder / "tests" / "t_hostile.json").write_text(json.dumps(tests))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(folder))
    return folder


def echo_case(given: list[dict], expect: list[dict], name: str = "hostile values") -> dict:
    return {"tests": [{"name": name, "step": "echo", "given": {"extract_notes": {"rows": given}},
                       "expect": {"rows": expect}}]}


@pytest.mark.parametrize("where", ["embedded", "postgres"])
def test_sql_and_jinja_looking_values_come_out_verbatim(tmp_path, monkeypatch, request, where):
    args = []
    if where == "postgres":
        request.getfixturevalue("pg_db")
        args = ["--warehouse"]
    rows = [{"id": i, "note": text} for i, text in enumerate(HOSTILE)]
    folder_with(tmp_path, monkeypatch, echo_case(rows, rows))
    result = CliRunner().invoke(app, ["test", *args])
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output


def test_a_hostile_column_name_is_refused_before_any_sql(tmp_path, monkeypatch):
    bad = 'note"; DROP TABLE raw.notes; --'
    folder_with(tmp_path, monkeypatch, echo_case([{"id": 1, bad: "x"}], [{"id": 1}]))
    result = CliRunner().invoke(app, ["test"])
    assert result.exit_code == 2
    out = result.output.replace("\n", " ")
    assert 'definitions/tests/t_hostile.json: $.tests[0].given.extract_notes.rows[0]["note\\"; DROP TABLE' in out
    assert "is not a plain identifier (fix: use letters, digits and underscores" in out
    assert "PASS" not in out and "FAIL" not in out


def test_the_diff_shows_markup_and_escapes_literally(tmp_path, monkeypatch):
    given = [{"id": 1, "note": "[bold red]boom[/]"}, {"id": 2, "note": "\x1b[2Jgone"}]
    folder_with(tmp_path, monkeypatch, echo_case(given, [{"id": 1, "note": "[link=x]y"}], name="[red]name[/red]"))
    result = CliRunner().invoke(app, ["test"])
    assert result.exit_code == 1
    assert "\x1b" not in result.output  # a terminal escape from a cell is written escaped
    assert "'\\x1b[2Jgone'" in result.output
    assert "[bold red]boom[/]" in result.output and "[link=x]y" in result.output
    assert "[red]name[/red]" in result.output
