"""The DuckDB warehouse file held by another process: the wait is bounded and the message names the holder."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from dagspec.warehouse.duckdb import DuckDBWarehouse, WarehouseBusy

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)  # a user looking at the results in a shell
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold(path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "holding"
    return proc


@pytest.fixture()
def warehouse_file(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.close()
    return path


def test_a_reader_left_open_is_named_and_the_wait_ends(warehouse_file, monkeypatch):
    monkeypatch.setenv("DAGSPEC_WAREHOUSE_LOCK_WAIT", "1")
    holder = hold(warehouse_file, 60)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as info, DuckDBWarehouse(warehouse_file).session():
            pass
        assert time.monotonic() - started < 30  # bounded by the setting, not the default 10 minutes
    finally:
        holder.kill()
        holder.wait()
    text = str(info.value)
    assert f"PID {holder.pid}" in text and "not a dagspec task" in text and "stayed locked for 1s" in text
    assert "another task" not in text  # the old message blamed a task
    assert "DAGSPEC_WAREHOUSE_LOCK_WAIT" in text and "copy" in text


def test_the_run_goes_on_once_the_holder_lets_go(warehouse_file, monkeypatch, caplog):
    monkeypatch.setenv("DAGSPEC_WAREHOUSE_LOCK_WAIT", "60")
    holder = hold(warehouse_file, 2)
    threading.Thread(target=holder.wait, daemon=True).start()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="dagspec"), DuckDBWarehouse(warehouse_file).session() as session:
        assert session.con.execute("SELECT a FROM t").fetchall() == [(1,)]
    waited = time.monotonic() - started
    warnings = [r.getMessage() for r in caplog.records if "is locked" in r.getMessage()]
    assert len(warnings) == 1 and f"PID {holder.pid}" in warnings[0]  # told once, not once per retry
    # How long the wait was, once: `make bench-ops` takes it off the task's run time.
    [opened] = [r.getMessage() for r in caplog.records if "waiting for the lock" in r.getMessage()]
    said = float(re.search(r"opened after ([0-9.]+)s", opened).group(1))
    assert 0.5 < said <= waited + 0.1, (opened, waited)


def test_no_wait_no_word(warehouse_file, caplog):
    with caplog.at_level(logging.INFO, logger="dagspec"), DuckDBWarehouse(warehouse_file).session():
        pass
    assert not [r for r in caplog.records if "lock" in r.getMessage()]


def test_another_task_holding_it_is_called_a_task(warehouse_file, monkeypatch):
    monkeypatch.setenv("DAGSPEC_WAREHOUSE_LOCK_WAIT", "0")
    # argv[0] as an Airflow task process retitles itself
    # (with another argv[0] Python no longer finds the venv by itself: hand it the path)
    proc = subprocess.Popen(["airflow task supervisor:", "-c", HOLD, str(warehouse_file), "60"], executable=sys.executable,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "holding"
    try:
        with pytest.raises(WarehouseBusy, match=rf"another task writes to it \(.*PID {proc.pid}\)"), \
                DuckDBWarehouse(warehouse_file).session():
            pass
    finally:
        proc.kill()
        proc.wait()
