"""The sample's window: up to yesterday for the demo, fixed for the tests, the same bytes for one window."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

from typer.testing import CliRunner

from dagspec.cli import app
from dagspec.sample_data import build, window_of, yesterday


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_one_window_gives_one_set_of_bytes_and_says_which_days_it_holds(tmp_path):
    a, b, c = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    first = build(a, end=date(2026, 3, 10), days=3, customer_count=50)
    build(b, end=date(2026, 3, 10), days=3, customer_count=50)
    build(c, end=date(2026, 3, 11), days=3, customer_count=50)
    assert (first.first_day, first.last_day) == (date(2026, 3, 8), date(2026, 3, 10))
    assert window_of(a) == (date(2026, 3, 8), date(2026, 3, 10))
    assert digest(a) == digest(b) != digest(c)
    assert window_of(tmp_path / "missing.db") is None


def test_the_command_defaults_to_yesterday_and_rebuilds_an_older_window(tmp_path):
    db = tmp_path / "source.db"
    runner = CliRunner()
    res = runner.invoke(app, ["sample-data", "--path", str(db), "--days", "2"])
    assert res.exit_code == 0, res.output
    assert window_of(db) == (yesterday() - timedelta(days=1), yesterday())
    res = runner.invoke(app, ["sample-data", "--path", str(db), "--days", "2"])
    assert "already at" in res.output and window_of(db)[1] == yesterday()
    res = runner.invoke(app, ["sample-data", "--path", str(db), "--days", "2", "--end", "2025-12-31"])
    assert res.exit_code == 0 and "rebuilding it for 2025-12-30 to 2025-12-31" in " ".join(res.output.split())
    assert window_of(db) == (date(2025, 12, 30), date(2025, 12, 31))
