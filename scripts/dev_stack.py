#!/usr/bin/env python
"""The embedded Airflow stack behind `make up` / `make down`.

    dev_stack.py up       configure, migrate, start api-server, scheduler, dag-processor and
                          triggerer, wait until healthy, then stay in the foreground
    dev_stack.py down     stop a stack started by `up` (from its pids file)
    dev_stack.py status   show which components run

Everything is configured through AIRFLOW__* environment variables handed to each child, so the
Airflow home holds only state: the SQLite metadata DB, logs, generated secrets and the admin
password. Environment: AIRFLOW_HOME, DAGSPEC_HOME, DAGSPEC_PORT (default 8080),
DAGSPEC_DAGS_FOLDER (default <repo>/dags), DAGSPEC_UP_TIMEOUT (seconds until every component
must be healthy, default 300), DAGSPEC_SAMPLE_END and DAGSPEC_SAMPLE_DAYS (the sample's last day, default
yesterday, and its length, default 365). The keys in TUNABLE may be overridden by exporting them.

The scale-out layout (docker-compose.yaml's topology, natively): DAGSPEC_EXECUTOR=CeleryExecutor
adds DAGSPEC_CELERY_WORKERS (default 2) `airflow celery worker`s named worker-1, worker-2, ...
with broker DAGSPEC_CELERY_BROKER (default redis://127.0.0.1:6379/0);
DAGSPEC_SQL_ALCHEMY_CONN puts the metadata DB elsewhere (e.g. PostgreSQL; default SQLite).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime

import psutil
from devstack.health import fetch_health, ready_components
from devstack.layout import SCRIPT_NAME, STOP_GRACE_S, Layout, read_json, say
from devstack.processes import is_same, stack_processes, stop_all
from devstack.up import cmd_up


def cmd_down() -> int:
    lay = Layout()
    state = read_json(lay.pids_file)
    supervisor = state.get("supervisor")
    if supervisor and is_same(supervisor):
        # Let `up` run its own shutdown, so it reports and cleans up as on Ctrl-C.
        os.kill(supervisor["pid"], signal.SIGTERM)
        say(f"asked the stack (pid {supervisor['pid']}) to stop ...")
        try:
            psutil.Process(supervisor["pid"]).wait(timeout=STOP_GRACE_S + 15)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            say("it did not stop in time: stopping the components directly")
    leftovers = stack_processes(lay.home)
    if state.get("components") or leftovers:
        stop_all(lay.home, state.get("components", {}))
    lay.pids_file.unlink(missing_ok=True)
    say("stack stopped" if state or leftovers else f"no stack runs from {lay.home}")
    return 0


def cmd_status() -> int:
    lay = Layout()
    state = read_json(lay.pids_file)
    components = state.get("components", {})
    if not components:
        say(f"no stack recorded in {lay.pids_file}")
        return 1
    health = fetch_health(lay)
    ready = ready_components(health, datetime.min.replace(tzinfo=UTC))
    running = 0
    for name, record in components.items():
        alive = is_same(record)
        running += alive
        mark = ("running, healthy" if name in ready else "running") if alive else "stopped"
        say(f"{name:14} pid {record['pid']:<8} {mark}")
    say(f"api: {state.get('url')} ({'answers' if health else 'does not answer'})")
    return 0 if running == len(components) else 1


def main(argv: list[str]) -> int:
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status}
    if len(argv) != 1 or argv[0] not in commands:
        say(f"usage: {SCRIPT_NAME} up|down|status")
        return 2
    try:
        return commands[argv[0]]()
    except KeyboardInterrupt:  # before the components start, e.g. during the migration
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
