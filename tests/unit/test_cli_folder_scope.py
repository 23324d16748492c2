"""The folder options belong to one command: a second command in the same process sees its own folders."""

from __future__ import annotations

import os
from pathlib import Path

from support.pinned_examples import pinned_copy
from typer.testing import CliRunner

from dagspec.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dags" / "definitions" / "orders_daily.json"


def _folder(tmp_path: Path, name: str, dag_id: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    copy = pinned_copy(EXAMPLE, folder / f"{dag_id}.json")
    copy.write_text(copy.read_text().replace('"orders_daily"', f'"{dag_id}"'))
    return folder


def test_definitions_option_does_not_leak_into_the_next_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    for variable in ("DAGSPEC_DEFINITIONS", "DAGSPEC_SQL_DIR", "DAGSPEC_EXPECTATIONS_DIR"):
        monkeypatch.delenv(variable, raising=False)
    first, second = _folder(tmp_path, "first", "first_dag"), _folder(tmp_path, "second", "second_dag")
    runner = CliRunner()
    res = runner.invoke(app, ["list", "--definitions", str(first), "--sql-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "first_dag" in res.output
    assert "DAGSPEC_DEFINITIONS" not in os.environ and "DAGSPEC_SQL_DIR" not in os.environ

    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(second))
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0, res.output
    assert "second_dag" in res.output and "first_dag" not in res.output

    # An option over a variable set by the caller wins for that command only; the caller's value comes back.
    res = runner.invoke(app, ["list", "--definitions", str(first)])
    assert "first_dag" in res.output and "second_dag" not in res.output
    assert os.environ["DAGSPEC_DEFINITIONS"] == str(second)
