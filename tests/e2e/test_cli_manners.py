"""Terminal manners: clear errors for dates a run cannot have, named skipped dates, a failed bar that says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.pinned_examples import pinned_copy

ROOT = Path(__file__).resolve().parents[2]
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))


def dagspec(*args: str, home: Path, columns: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSPEC_HOME": str(home), "COLUMNS": str(columns)}
    return subprocess.run([DAGSPEC, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def test_reversed_and_out_of_bounds_dates_are_refused_before_anything_runs(tmp_path):
    # The bundled orders_daily has no end_date (the demo runs it up to today): a copy that has one.
    defs = tmp_path / "definitions"
    defs.mkdir()
    pinned_copy(ROOT / "dags" / "definitions" / "orders_daily.json", defs / "orders_daily.json")
    bounded = ("--definitions", str(defs))
    res = dagspec("run", "orders_daily", "--date", "2025-03-05", "--to", "2025-03-01", *bounded, home=tmp_path)
    assert res.returncode == 2 and "--to 2025-03-01 is before --date 2025-03-05" in res.stderr
    for day in ("2026-01-05", "2024-12-31"):  # the copy runs 2025-01-01 .. 2025-12-31
        res = dagspec("run", "orders_daily", "--date", day, *bounded, home=tmp_path)
        assert res.returncode == 2, res.stderr
        assert "orders_daily runs 2025-01-01 .. 2025-12-31" in res.stderr and f"{day} is outside" in res.stderr
    res = dagspec("backfill", "orders_daily", "--from", "2025-12-30", "--to", "2026-01-02", "--local", *bounded,
                  home=tmp_path)
    assert res.returncode == 2 and "2026-01-02 is outside" in res.stderr
    res = dagspec("backfill", "orders_daily", "--from", "2025-03-02", "--to", "2025-03-01", "--local", *bounded,
                  home=tmp_path)
    assert res.returncode == 2 and "--to 2025-03-01 is before --from 2025-03-02" in res.stderr
    assert not any("Traceback" in r for r in (res.stderr, res.stdout))
    assert not (tmp_path / "store").exists()  # refused before any step ran


def test_skipped_dates_are_named_and_a_failed_bar_says_failed(data_home, tmp_path):
    first = dagspec("backfill", "orders_daily", "--from", "2025-03-01", "--to", "2025-03-02", "--local", home=data_home)
    assert first.returncode == 0, first.stderr[-2000:]
    again = dagspec("backfill", "orders_daily", "--from", "2025-03-01", "--to", "2025-03-03", "--local", home=data_home)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "skipping 2 date(s) already loaded: 2025-03-01, 2025-03-02 (--reprocess re-runs them)" in again.stderr
    assert "✓ orders_daily" in again.stderr
    empty = tmp_path / "no-source"  # no source database here: the extract fails
    empty.mkdir()
    res = dagspec("run", "orders_daily", "--date", "2025-03-01", home=empty)
    assert res.returncode == 1
    assert "✗ orders_daily: 1 of 1 date(s) failed" in res.stderr, res.stderr[-2000:]
    assert "✓ orders_daily" not in res.stderr


def test_tables_keep_every_column_and_whole_headers_on_a_narrow_terminal(tmp_path):
    headers = ["file", "dag_id", "schedule", "steps", "status"]
    for columns in (50, 60, 200):
        res = dagspec("list", home=tmp_path, columns=columns)
        assert res.returncode == 0
        lines = res.stdout.splitlines()
        head = next(line for line in lines if "file" in line)
        if "┃" in head:  # the table fits: one header row with every header whole
            assert [h.strip() for h in head.strip("┃ ").split("┃")] == headers, (columns, head)
        else:  # narrower than the table's narrowest layout: each row a block of 'header  value' lines
            starts = [line.split()[0] for line in lines if line.strip()]
            assert all(starts.count(h) == 4 for h in headers), (columns, res.stdout)
        assert "…" not in res.stdout and res.stdout.count("valid") == 4
        assert max(len(line) for line in res.stdout.splitlines()) <= columns
    wide = dagspec("list", home=tmp_path, columns=200).stdout
    assert "orders_model_retrain.json" in wide and "0 4 * * 1" in wide  # whole values where there is room


def test_a_log_that_is_not_a_terminal_keeps_each_message_on_its_lines(data_home):
    res = dagspec("run", "orders_daily", "--date", "2025-03-01", "-v", home=data_home)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stderr.splitlines()
    assert any(line.endswith("INFO    validate check_orders batch_date=2025-03-01 rows=419 "
                             "(engine: DuckDB (GX result format))") for line in lines), res.stderr[:2000]
    assert any("expect_column_values_to_not_be_null(order_id)" in line and line.rstrip().endswith("0  []")
               for line in lines)
    assert not any("Registered" in line or "great_expectations" in line for line in lines)
