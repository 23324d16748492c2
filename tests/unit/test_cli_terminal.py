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



def _fits(output: str, width: int = 60) -> str:
    """The output, checked to fit `width` without a cut ('stat…'), with its whitespace made single spaces."""
    lines = output.splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(line for line in lines if len(line) > width)
    assert "…" not in output
    return " ".join(output.split())


def test_freshness_fits_60_columns_with_every_header_and_value(data_home, tmp_path, monkeypatch):
    import pyarrow as pa

    from dagspec.store import Store

    monkeypatch.setenv("COLUMNS", "60")
    defs = tmp_path / "definitions"
    defs.mkdir()
    (defs / "fresh.json").write_text(json.dumps({
        "dag_id": "fresh_with_a_long_name", "start_date": "2025-01-01", "freshness": {"max_age_hours": 24},
        "steps": [{"id": "e", "kind": "extract", "source": {"table": "orders"},
                   "target": {"schema": "raw", "table": "orders_of_every_channel"}}]}))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(defs))
    data = pa.table({"x": list(range(1234))})
    Store(data_home / "store").write_partition("raw", "orders_of_every_channel", date(2025, 3, 1), data.schema,
                                                data.to_batches())
    res = CliRunner().invoke(app, ["freshness"])
    assert res.exit_code == 1, res.output
    said = _fits(res.output)
    for header in ("dag_id", "table", "latest partition", "rows", "age (h)", "max (h)", "status"):
        assert header in said
    assert "raw.orders_of_every_channel" in said and "2025-03-01" in said and "1,234" in said and "stale" in said


def test_models_list_fits_60_columns(monkeypatch):
    from dagspec.cli import models

    class Registry:
        def versions(self, model):
            return [{"version": "3", "champion": True, "canary": False, "created": 1740830400000,
                     "metrics": {"roc_auc": 0.8123, "pr_auc": 0.7012, "f1": 0.65},
                     "tags": {"dagspec.run_key": "orders_lost/2025-03-01", "dagspec.decision": "promoted",
                              "dagspec.decided_at": "2025-03-02T10:00:00Z",
                              "dagspec.reasons": "roc_auc 0.8123 >= 0.80 and beats the champion by 0.02"}}]

    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setattr(models, "_registry", Registry)
    res = CliRunner().invoke(app, ["models", "list", "orders_lost"])
    assert res.exit_code == 0, res.output
    said = _fits(res.output)
    for header in ("version", "roc_auc", "pr_auc", "f1", "alias", "decision", "window end", "trained (UTC)",
                   "decided (UTC)", "why"):
        assert header in said
    assert "0.8123" in said and "champion" in said and "promoted" in said and "2025-03-02 10:00" in said
    assert "beats the champion by 0.02" in said


def test_case_report_tables_fit_60_columns():
    from io import StringIO

    from rich.console import Console

    from dagspec.cli.case_report import diff_tables
    from dagspec.transform_tests.compare import Changed, Diff

    columns = ["order_id", "customer_id", "channel", "amount", "status", "ordered_at"]
    want = [1, 17, "web", "12.50", "delivered", "2025-03-01 10:00:00"]
    got = [1, 17, "web", "12.75", "returned", "2025-03-01 10:00:00"]
    diff = Diff(columns, missing=[want], unexpected=[got], produced=1,
                changed=[Changed(want, got, ["amount", "status"])])
    buffer = StringIO()
    diff_tables(Console(file=buffer, width=60, color_system=None), diff)
    said = _fits(buffer.getvalue())
    for name in columns:
        assert name in said
    assert "12.50" in said and "12.75" in said and "delivered" in said and "returned" in said
