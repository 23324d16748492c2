"""A running demo's sample grows by whole days: `dagspec sample-data --extend` appends the days after the sample's
last one (each day the same orders whoever extends it), leaves the days it had byte for byte, and the dev stack
extends it through tomorrow at start and once a day at midday, never around midnight when the runs read it."""

from __future__ import annotations

import sqlite3
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from typer.testing import CliRunner

from dagspec.cli import app
from dagspec.sample_data import build, extend, window_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from devstack import feeder


def orders(db: Path, first: str, last: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT * FROM orders WHERE date(ordered_at) BETWEEN ? AND ? ORDER BY order_id",
                           (first, last)).fetchall()


def test_extend_appends_whole_days_and_keeps_the_old_ones(tmp_path):
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    for db in (a, b):
        build(db, end=date(2025, 3, 3), days=3, customer_count=50)
    before = orders(a, "2025-03-01", "2025-03-03")
    added = extend(a, date(2025, 3, 5))
    assert window_of(a) == (date(2025, 3, 1), date(2025, 3, 5))
    assert orders(a, "2025-03-01", "2025-03-03") == before
    new = orders(a, "2025-03-04", "2025-03-05")
    assert len(new) == added and 600 <= added <= 1000  # 300-500 orders a day
    assert [r[0] for r in new] == list(range(before[-1][0] + 1, before[-1][0] + 1 + added))  # ids go on
    assert extend(a, date(2025, 3, 5)) == 0  # a day it has is never drawn again
    extend(b, date(2025, 3, 4))
    extend(b, date(2025, 3, 5))  # day by day or at once: the same orders
    assert orders(b, "2025-03-04", "2025-03-05") == new


def test_the_cli_extends_and_says_what_it_added(tmp_path):
    db = tmp_path / "s.db"
    build(db, end=date(2025, 3, 3), days=2, customer_count=20)
    result = CliRunner().invoke(app, ["sample-data", "--path", str(db), "--extend", "--end", "2025-03-04"])
    assert result.exit_code == 0, result.output
    assert "now up to 2025-03-04" in " ".join(result.output.split())
    missing = CliRunner().invoke(app, ["sample-data", "--path", str(tmp_path / "none.db"), "--extend"])
    assert missing.exit_code == 2 and "dagspec sample-data" in missing.output


def test_the_dev_stack_feeds_at_start_then_once_a_day_at_midday(tmp_path, monkeypatch):
    calls = []
    monkeypatch.delenv("DAGSPEC_SAMPLE_END", raising=False)
    monkeypatch.setattr(feeder.subprocess, "call", lambda args, **_: calls.append(args[-1]) or 0)
    f = feeder.SampleFeeder({}, tmp_path / "feed.log")
    f.feed(datetime(2026, 5, 1, 23, 50, tzinfo=UTC))  # the stack starts late in the evening
    f.feed(datetime(2026, 5, 1, 23, 59, tzinfo=UTC))
    f.feed(datetime(2026, 5, 2, 0, 0, 5, tzinfo=UTC))  # midnight: the runs read the source, nothing is written
    f.feed(datetime(2026, 5, 2, 12, 0, tzinfo=UTC))
    f.feed(datetime(2026, 5, 2, 13, 0, tzinfo=UTC))
    assert calls == ["2026-05-02", "2026-05-03"]  # always through tomorrow
    monkeypatch.setenv("DAGSPEC_SAMPLE_END", "2025-12-31")  # the tests' pinned sample never moves
    pinned = feeder.SampleFeeder({}, tmp_path / "feed.log")
    pinned.feed(datetime(2026, 5, 3, 12, 0, tzinfo=UTC))
    assert calls == ["2026-05-02", "2026-05-03"]
