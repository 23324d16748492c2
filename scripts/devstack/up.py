"""`dev_stack.py up`: configure, migrate, start every component, wait until healthy, stop all on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime

from devstack.config import airflow_env, ensure_password, has_sample_data_command, sample_window_args
from devstack.feeder import SampleFeeder
from devstack.health import components, fetch_health, port_taken, ready_components, ready_workers
from devstack.layout import ADMIN, BIN, READY_TIMEOUT_S, SCRIPT_NAME, Layout, Shutdown, read_json, say, write_private_json
from devstack.processes import identity, identity_or_pid, is_same, run_step, stack_processes, stop_all, tail


def cmd_up() -> int:
    lay = Layout()
    lay.logs.mkdir(parents=True, exist_ok=True)
    lay.data.mkdir(parents=True, exist_ok=True)

    state = read_json(lay.pids_file)
    if state:
        records = [state.get("supervisor"), *state.get("components", {}).values()]
        if any(r and is_same(r) for r in records):
            say(f"a stack already runs from {lay.home}: run `make down` (or `{SCRIPT_NAME} down`) first")
            return 1
        say(f"removing stale pids file {lay.pids_file}")
    # Orphans of a stack whose supervisor was killed -9 would hold the DB and the port.
    if stack_processes(lay.home):
        say("stopping leftover processes of an earlier run ...")
        stop_all(lay.home, {})
    lay.pids_file.unlink(missing_ok=True)
    if port_taken(lay.port):
        say(f"port {lay.port} on 127.0.0.1 is in use: stop that server or set DAGSPEC_PORT")
        return 1

    env = airflow_env(lay)
    password = ensure_password(lay)
    say(f"Airflow home {lay.home}\nDAGs folder  {lay.dags}\ndata home    {lay.data}")
    started_at = datetime.now(UTC)
    t0 = time.monotonic()

    run_step("migrating the metadata database", [str(BIN / "airflow"), "db", "migrate"], env, lay.logs / "db-migrate.log")
    if has_sample_data_command(env):
        run_step(
            "creating sample data",
            [str(BIN / "dagspec"), "sample-data", *sample_window_args()],
            env,
            lay.logs / "sample-data.log",
        )
        feeder = SampleFeeder(env, lay.logs / "sample-data.log")
    else:
        say("WARNING: `dagspec sample-data` is not available: skipping the sample source data")
        feeder = None

    procs: dict[str, subprocess.Popen] = {}

    def reap() -> None:
        for proc in procs.values():
            proc.poll()

    def on_signal(signum, _frame):
        raise Shutdown(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    exit_code = 0
    try:
        for name, args in components().items():
            with (lay.logs / f"{name}.log").open("a") as log:
                log.write(f"\n===== {datetime.now().isoformat(timespec='seconds')} dev_stack up =====\n")
                log.flush()
                # A group per component: Ctrl-C reaches only us, and one killpg stops a
                # component together with the workers it forks.
                procs[name] = subprocess.Popen(
                    [str(BIN / "airflow"), *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    process_group=0,
                )
        write_private_json(
            lay.pids_file,
            {
                "home": str(lay.home),
                "url": lay.url,
                "supervisor": identity(os.getpid()),
                "components": {n: identity(p.pid) for n, p in procs.items()},
            },
        )
        say(f"starting {', '.join(procs)} (logs: {lay.logs}/<component>.log)")

        ready: set[str] = set()
        last_note = time.monotonic()
        lost: set[str] = set()
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None and name not in lost:
                    if name.startswith("worker-") and any(n.startswith("worker-") and p.poll() is None for n, p in procs.items()):
                        # As in a cluster: one lost worker is survivable, its tasks are retried elsewhere.
                        say(f"\n{name} exited with code {proc.returncode}; the other workers carry on")
                        lost.add(name)
                        continue
                    say(
                        f"\n{name} exited with code {proc.returncode}; last lines of its log:\n"
                        f"{tail(lay.logs / f'{name}.log')}\n\nstopping the other components ..."
                    )
                    exit_code = 1
                    raise Shutdown(f"{name} died")
            if len(ready) < len(procs):
                now_ready = ready_components(fetch_health(lay), started_at) | ready_workers(lay, procs)
                for name in sorted(now_ready - ready):
                    say(f"  {name} is up ({time.monotonic() - t0:.0f} s)")
                ready |= now_ready
                waiting = [n for n in procs if n not in ready]
                if not waiting:
                    say(
                        f"\nAirflow is ready at {lay.url}\n  login:    {ADMIN}\n  password: {password}\n"
                        f"(stored in {lay.password_file})\nCtrl-C stops every component."
                    )
                elif time.monotonic() - t0 > READY_TIMEOUT_S:
                    say(f"\nnot healthy after {READY_TIMEOUT_S} s: {', '.join(waiting)}")
                    for name in waiting:
                        say(f"--- {name}.log ---\n{tail(lay.logs / f'{name}.log')}")
                    exit_code = 1
                    raise Shutdown("timeout")
                elif time.monotonic() - last_note >= 15:
                    say(f"  waiting for {', '.join(waiting)} ({time.monotonic() - t0:.0f} s)")
                    last_note = time.monotonic()
            if feeder is not None:
                feeder.feed()
            time.sleep(1)
    except Shutdown as why:
        say(f"stopping the stack ({why}) ...")
    finally:
        # A second Ctrl-C must not leave the stop half done.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stop_all(lay.home, {n: identity_or_pid(p) for n, p in procs.items()}, reap)
        lay.pids_file.unlink(missing_ok=True)
        say("stopped")
    return exit_code
