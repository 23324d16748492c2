"""Terminal manners through the real CLI: skipped dates named as ranges, dates a run cannot have refused with
the fix, GX's chatter kept out of `run -v`."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

from support.pinned_examples import pinned_copy
from typer.testing import CliRunner

from dagspec.cli import app
from dagspec.cli.common import named_dates

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "dags" / "definitions" / "orders_daily.json"


def test_named_dates_are_compact_ranges_and_keep_every_date():
    january = {date(2025, 1, 1) + timedelta(days=i) for i in range(31)}
    assert named_dates(january | {date(2025, 3, 4)}) == "2025-01-01..2025-01-31, 2025-03-04"
    assert named_dates([date(2025, 3, 2), date(2025, 3, 1)]) == "2025-03-01, 2025-03-02"  # two: both written
    assert named_dates([]) == ""


def test_dates_a_run_cannot_have_exit_2_with_the_bounds_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setenv("DAGSPEC_HOME", str(tmp_path / "home"))
    defs = tmp_path / "definitions"
    defs.mkdir()
    pinned_copy(EXAMPLE, defs / "orders_daily.json")  # runs 2025-01-01 .. 2025-12-31
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    runner = CliRunner()
    res = runner.invoke(app, ["run", "orders_daily", "--date", "2025-03-05", "--to", "2025-03-01"])
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert "--to 2025-03-01 is before --date 2025-03-05: swap them (--date 2025-03-01 --to 2025-03-05)" in said
    for day in ("2024-12-31", "2026-01-05"):
        res = runner.invoke(app, ["run", "orders_daily", "--date", day])
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and res.exception is None or isinstance(res.exception, SystemExit), said
        assert f"orders_daily runs 2025-01-01 .. 2025-12-31 (start_date/end_date in its definition): {day} is " \
               "outside; pick dates in that range, or widen start_date/end_date in the definition" in said
    assert not (tmp_path / "home" / "store").exists()  # refused before any step ran


def test_run_verbose_keeps_dagspec_lines_without_gx_chatter(data_home, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    defs = tmp_path / "definitions"
    defs.mkdir()
    definition = json.loads(pinned_copy(EXAMPLE, defs / "orders_daily.json").read_text())
    # A lookahead is not RE2: this check is run by GX's own pandas engine, which makes a context.
    definition["steps"][1]["expectations"].append(
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "status", "regex": "^(?=[a-z])[a-z]+$"}})
    (defs / "orders_daily.json").write_text(json.dumps(definition))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    res = CliRunner().invoke(app, ["run", "orders_daily", "--date", "2025-03-01", "-v"])
    assert res.exit_code == 0, res.output[-2000:]
    assert "expect_column_values_to_match_regex run by GX's pandas engine on column(s) status" in res.output
    assert "validate check_orders batch_date=2025-03-01 rows=419" in res.output
    assert "1 date(s) done" in res.output
    for noise in ("Calculating Metrics", "ephemeral docs site", "Created temporary directory"):
        assert noise not in res.output

