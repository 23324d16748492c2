"""Hostile cases for integrity: what is published is exactly what was validated, a half-done date is never
taken as done, a killed writer's leftovers stay out of the table's folder, commits are durable."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from support.expected import source_orders, warehouse_rows
from support.integrity_fixtures import LOCK, WRITER, gate_definition, null_status_copy, pg_admin

from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
from dagspec.stages import StepFailed

DAY = date(2025, 3, 1)
START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 2, tzinfo=UTC)


def _pipeline(dag_id: str, source_table: str, steps: list[dict] = ()) -> Pipeline:
    return Pipeline.model_validate({"dag_id": dag_id, "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": source_table, "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}}, *steps]})


CHECKED = [
    {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "status"}}]},
    {"id": "publish_orders", "kind": "publish", "input": "extract_orders", "table": {"schema": "pin_x", "table": "orders"}},
]


def _published(data_home) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(data_home / "warehouse.duckdb"), read_only=True)
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pin_x'").fetchone()[0]
        return con.execute("SELECT order_id, status FROM pin_x.orders ORDER BY order_id").fetchall() if exists else []
    finally:
        con.close()


def _restaged_after_the_check_is_refused(data_home, x: Pipeline, y: Pipeline, table: str) -> None:
    """x stages and checks the date, y stages other rows into the table x's publish reads: x's publish refuses."""
    run_step(x, "extract_orders", START, END)
    run_step(x, "check_orders", START, END)
    run_step(y, "extract_orders", START, END)
    with pytest.raises(StepFailed, match=rf"partition raw\.{table} batch_date=2025-03-01 changed since check_orders "
                                         r"validated it; re-run from extract_orders"):
        run_step(x, "publish_orders", START, END)
    assert _published(data_home) == []


@pytest.mark.parametrize("severity", ["fail", "warn"])
def test_publish_refuses_a_partition_restaged_after_it_was_validated(data_home, severity):
    """x.extract -> x.validate (passes) -> y.extract (NULL statuses into the same raw.orders) -> x.publish."""
    null_status_copy(data_home / "source.db")
    steps = [dict(CHECKED[0], expectations=[dict(CHECKED[0]["expectations"][0], severity=severity)]), CHECKED[1]]
    x = _pipeline("pin_x", "orders", steps)
    _restaged_after_the_check_is_refused(data_home, x, _pipeline("pin_y", "orders_bad"), "orders")

    # Re-run from the extract: the checked version is the one published, to the row.
    for step in ("extract_orders", "check_orders", "publish_orders"):
        run_step(x, step, START, END)
    expected = [(o[0], o[3]) for o in source_orders(data_home / "source.db", DAY)]
    assert _published(data_home) == expected and all(status is not None for _, status in expected)


def test_publish_refuses_passing_rows_rewritten_after_the_drop_rows_check(data_home):
    """x.check (drop_rows) writes raw.orders__passed and pins it; y stages other rows there; x.publish refuses."""
    null_status_copy(data_home / "source.db")
    dropping = dict(CHECKED[0], on_fail="drop_rows", quarantine={"schema": "pin_q", "table": "orders"})
    x = _pipeline("pin_x", "orders", [dropping, CHECKED[1]])
    y = Pipeline.model_validate({"dag_id": "pin_y", "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders_bad", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders__passed"}}]})
    _restaged_after_the_check_is_refused(data_home, x, y, "orders__passed")
    run_step(x, "check_orders", START, END)
    run_step(x, "publish_orders", START, END)
    expected = [(o[0], o[3]) for o in source_orders(data_home / "source.db", DAY)]
    assert _published(data_home) == expected


def test_a_partition_restaged_after_the_reader_took_it_is_not_what_it_reads(data_home):
    """The swap lands between the reader's check and its scan: a local partition keeps its file names, so
    without holding the checked files the scan would read the new rows."""
    from dagspec.runner import window_of_day
    from dagspec.stages import RunContext

    null_status_copy(data_home / "source.db")
    x = _pipeline("pin_r", "orders", CHECKED)
    run_step(x, "extract_orders", START, END)
    run_step(x, "check_orders", START, END)
    ctx = RunContext(x, window_of_day(x, DAY), step_id="publish_orders")
    dataset = ctx.staged("extract_orders", [DAY])
    run_step(_pipeline("pin_y", "orders_bad"), "extract_orders", START, END)
    statuses = dataset.to_table(columns=["status"]).column("status")
    assert statuses.null_count == 0 and len(statuses) == len(source_orders(data_home / "source.db", DAY))
    ctx.close()
    assert not list((data_home / "store/_tmp").glob("held.*"))  # the step's hold ends with it


def test_a_transform_downstream_of_the_check_refuses_the_restaged_partition(data_home):
    null_status_copy(data_home / "source.db")
    x = _pipeline("pin_t", "orders", [CHECKED[0], {
        "id": "daily_revenue", "kind": "transform", "after": ["check_orders"], "sql": "orders/daily_revenue.sql",
        "inputs": ["extract_orders"], "target": {"schema": "pin_t", "table": "revenue"}}])
    run_step(x, "extract_orders", START, END)
    run_step(x, "check_orders", START, END)
    run_step(_pipeline("pin_y", "orders_bad"), "extract_orders", START, END)
    with pytest.raises(StepFailed, match="changed since check_orders validated it"):
        run_step(x, "daily_revenue", START, END)


def test_a_reader_with_no_record_of_the_check_refuses(data_home):
    """Validate never ran for the batch (a task marked success by hand, a lost record): nothing is read."""
    x = _pipeline("pin_n", "orders", CHECKED)
    run_step(x, "extract_orders", START, END)
    with pytest.raises(StepFailed, match="no record that check_orders validated it"):
        run_step(x, "publish_orders", START, END)
    assert _published(data_home) == []


def test_a_reader_not_downstream_of_the_check_is_not_pinned(data_home):
    """A publish that does not wait for the validate step reads the partition as it is (nothing was promised)."""
    x = _pipeline("pin_u", "orders", [dict(CHECKED[1], after=["extract_orders"]), dict(CHECKED[0], after=["extract_orders"])])
    run_step(x, "extract_orders", START, END)
    run_step(x, "publish_orders", START, END)
    assert len(_published(data_home)) == len(source_orders(data_home / "source.db", DAY))


# ---------------------------------------------------------------- a killed run is not a done date


def test_a_run_killed_after_its_extract_leaves_the_date_to_be_run_again(data_home, tmp_path, monkeypatch, pg_orders):
    """Run 1 loads 3 rows; run 2 (5 rows at the source) is kill -9'd after its extract committed, while a later
    step waits; `backfill --local` must not take the date as loaded from run 1's record: it runs it again."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    gate_definition(tmp_path / "defs", pg_orders)
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(tmp_path / "defs"))
    monkeypatch.setenv("AIRFLOW_CONN_PIN_PG", "postgres://postgres@127.0.0.1:5432/test")
    dagspec = [str(Path(sys.executable).with_name("dagspec"))]
    first = subprocess.run([*dagspec, "run", "pin_kill", "--date", "2025-03-01"], capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    published = "SELECT order_id FROM pin_k.orders ORDER BY 1"
    assert [r[0] for r in warehouse_rows(data_home / "warehouse.duckdb", published)] == [1, 2, 3]

    with pg_admin() as c:
        c.execute(f"INSERT INTO {pg_orders}.orders VALUES (4, 'placed', '2025-03-01 10:00+00'), "
                  "(5, 'shipped', '2025-03-01 11:00+00')")
    holder = pg_admin()
    holder.execute("BEGIN")
    holder.execute(f"SELECT pg_advisory_xact_lock({LOCK})")
    proc = subprocess.Popen([*dagspec, "run", "pin_kill", "--date", "2025-03-01"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        with pg_admin() as c:
            while not c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
                                "AND NOT granted", [LOCK]).fetchone()[0]:
                assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
                assert time.monotonic() < deadline, "the run never reached the gate"
                time.sleep(0.2)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            c.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
                      "AND NOT granted", [LOCK])
    finally:
        if proc.poll() is None:
            proc.kill()
        holder.close()
    manifest = data_home / "store/raw/orders/batch_date=2025-03-01/_manifest.json"
    assert json.loads(manifest.read_text())["rows"] == 5  # run 2's extract had committed
    assert [r[0] for r in warehouse_rows(data_home / "warehouse.duckdb", published)] == [1, 2, 3]  # not published
    record = json.loads((data_home / "store/_runs/pin_kill/batch_date=2025-03-01.json").read_text())
    assert record["state"] == "running" and record["steps"]["extract_orders"] == "success"

    again = subprocess.run([*dagspec, "backfill", "pin_kill", "--from", "2025-03-01", "--to", "2025-03-01", "--local"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    said = " ".join((again.stdout + again.stderr).split())
    assert "never ended (killed?): running the date again" in said and "pin_kill: 1 date(s) done" in said, said
    assert [r[0] for r in warehouse_rows(data_home / "warehouse.duckdb", published)] == [1, 2, 3, 4, 5]
    record = json.loads((data_home / "store/_runs/pin_kill/batch_date=2025-03-01.json").read_text())
    assert record["state"] == "success" and set(record["steps"].values()) == {"success"}

    skipped = subprocess.run([*dagspec, "backfill", "pin_kill", "--from", "2025-03-01", "--to", "2025-03-01",
                              "--local"], capture_output=True, text=True, timeout=300)
    said = " ".join((skipped.stdout + skipped.stderr).split())
    assert skipped.returncode == 0 and "skipping 1 date(s) already loaded" in said and "0 date(s) done" in said, said


def test_staged_partitions_without_a_run_record_are_not_a_done_date(data_home):
    """kill -9 during validate or publish of a run that wrote no record: partitions alone are not 'loaded'."""
    from typer.testing import CliRunner

    from dagspec.cli import app
    from dagspec.spec import load_definition

    orders_daily = load_definition(Path(__file__).resolve().parents[2] / "dags/definitions/orders_daily.json")
    for step in ("extract_orders", "check_orders", "daily_revenue", "publish_revenue"):  # every partition staged
        run_step(orders_daily, step, START, END)
    published = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'analytics' AND table_name = 'orders'"
    assert warehouse_rows(data_home / "warehouse.duckdb", published) == [(0,)]  # killed before publish_orders
    result = CliRunner().invoke(app, ["backfill", "orders_daily", "--from", "2025-03-01", "--to", "2025-03-01",
                                      "--local"])
    assert result.exit_code == 0 and "orders_daily: 1 date(s) done" in result.output, result.output
    got = warehouse_rows(data_home / "warehouse.duckdb", "SELECT order_id FROM analytics.orders ORDER BY 1")
    assert [r[0] for r in got] == [o[0] for o in source_orders(data_home / "source.db", DAY)]


# ---------------------------------------------------------------- a killed writer's leftovers, durable commits

def test_a_killed_writer_leaves_nothing_a_glob_over_the_table_folder_reads(tmp_path):
    """kill -9 mid-write: `read_parquet('<table>/**/*.parquet')` still reads the committed partitions only."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import duckdb
    import pyarrow as pa

    from dagspec.store import Store

    root = tmp_path / "store"
    schema = pa.schema([("id", pa.int64()), ("pad", pa.string())])
    Store(root).write_partition("raw", "t", DAY, schema, [pa.record_batch([pa.array([1, 2]), pa.array(["a", "b"])],
                                                                           schema=schema)])
    signal_file = tmp_path / "half-written"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(signal_file)])
    try:
        deadline = time.monotonic() + 120
        while not signal_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    glob = str(root / "raw" / "t" / "**" / "*.parquet")
    got = duckdb.sql(f"SELECT id FROM read_parquet('{glob}') ORDER BY id").fetchall()
    assert got == [(1,), (2,)]
    leftovers = [p for p in (root / "_tmp").rglob("part-*.parquet")]
    assert leftovers and leftovers[0].stat().st_size > 0  # the half file exists, outside the table's folder
    assert Store(root).batch_dates("raw", "t") == [DAY]


def test_commits_fsync_every_file_and_folder(tmp_path, monkeypatch):
    """Each part and the manifest, the folder they were written in, the table folder after the swap; the
    records too. A rename is not durable until its folder is fsynced."""
    import os

    import pyarrow as pa

    from dagspec.publish.files import export_partition
    from dagspec.store import Store

    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    root = tmp_path / "store"
    store = Store(root)
    schema = pa.schema([("id", pa.int64())])
    for attempt in range(2):  # the second replaces the first: the exchange path
        synced.clear()
        store.write_partition("raw", "t", DAY, schema, [pa.record_batch([pa.array([attempt])], schema=schema)])
        temp = [p for p in synced if p.startswith(f"{root}/_tmp/raw.t.batch_date=2025-03-01_")]
        assert {p.rsplit("/", 1)[1] for p in temp} >= {"part-00000.parquet", "_manifest.json"}, synced
        assert any(p.endswith("_manifest.json") for p in temp) and f"{root}/raw/t" in synced
        assert f"{root}/_tmp" in synced  # the other side of the rename
        written = max(synced.index(p) for p in temp)
        assert synced.index(f"{root}/raw/t", written) > written  # the table folder after the files
    synced.clear()
    export_partition(store, "csv", "out", "t", DAY, schema, [pa.record_batch([pa.array([1])], schema=schema)])
    assert any(p.endswith("/part-00000.csv") for p in synced) and f"{root}/out/t" in synced
    synced.clear()
    store.record_check("d", "check", DAY, "raw", "t", "0" * 64, True)
    assert synced[-1] == f"{root}/_checks/d/check/batch_date=2025-03-01"
    assert any(p.startswith(f"{root}/_tmp/checked.json.") for p in synced)


@pytest.mark.e2e
def test_in_airflow_a_publish_task_refuses_what_another_dag_restaged_after_the_check(airflow_db, dags_folder,
                                                                                      data_home):
    """The same sequence as Airflow tasks, each its own task run: x's extract and check, then y's extract into the
    same staged table, then x's publish alone (cleared and re-run, say). Only one of the two definitions is in the
    folder at a time."""
    import json
    import shutil
    from datetime import timedelta

    from airflow.dag_processing.dagbag import DagBag

    null_status_copy(data_home / "source.db")
    defs = dags_folder / "definitions"
    shutil.rmtree(defs)
    defs.mkdir()

    def dag(dag_id: str, source_table: str, steps: list[dict]):
        for old in defs.glob("*.json"):
            old.unlink()
        target = {"schema": "raw", "table": "pin_af"}
        first = {"id": "extract_orders", "kind": "extract", "target": target,
                 "source": {"table": source_table, "incremental_column": "ordered_at"}}
        (defs / f"{dag_id}.json").write_text(json.dumps({"dag_id": dag_id, "start_date": "2025-01-01", "retries": 0,
                                                        "steps": [first, *steps]}))
        bag = DagBag(dag_folder=str(dags_folder))
        assert not bag.import_errors, bag.import_errors
        return bag.dags[dag_id]

    def run(d, skip: str):
        end = datetime.combine(DAY + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        return d.test(logical_date=end, mark_success_pattern=skip)

    steps = [CHECKED[0], dict(CHECKED[1], table={"schema": "pin_af", "table": "orders"})]
    assert run(dag("pin_af_x", "orders", steps), "^publish_orders$").state == "success"
    assert run(dag("pin_af_y", "orders_bad", []), "^$").state == "success"
    dag_run = run(dag("pin_af_x", "orders", steps), "^(extract_orders|check_orders)$")
    assert dag_run.state == "failed"
    import duckdb

    con = duckdb.connect(str(data_home / "warehouse.duckdb"), read_only=True)
    try:
        assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pin_af'"
                               ).fetchone()[0]
    finally:
        con.close()


def test_the_stores_own_folders_are_no_schema_and_stale_temporaries_go(tmp_path):
    import os
    from datetime import timedelta

    import pyarrow as pa

    from dagspec.store import Store

    store = Store(tmp_path)
    schema = pa.schema([("id", pa.int64())])
    one = [pa.record_batch([pa.array([1])], schema=schema)]
    for reserved in ("_tmp", "_checks", "_runs"):
        with pytest.raises(ValueError, match=f"schema '{reserved}' is the store's own folder"):
            store.write_partition(reserved, "t", DAY, schema, one)
    store.write_partition("raw", "t", DAY, schema, one)
    stale, fresh = tmp_path / "_tmp/raw.t.batch_date=2025-03-02_deadbeef", tmp_path / "_tmp/checked.json.cafebabe"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"half")
    fresh.write_bytes(b"{")
    old = (datetime.now() - timedelta(days=1)).timestamp()
    os.utime(stale, (old, old))
    store.write_partition("raw", "t", date(2025, 3, 3), schema, one)
    assert not stale.exists() and fresh.exists()  # a young one may be another writer's, right now
    assert sorted(p.name for p in (tmp_path / "_tmp").iterdir()) == [fresh.name]
