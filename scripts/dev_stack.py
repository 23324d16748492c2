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

import base64
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
# airflow and dagspec are console scripts of the venv that runs this file.
BIN = Path(sys.executable).parent

COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    # The log servers bind 0.0.0.0:8793/8794; the api-server reads task logs from the shared
    # local folder anyway, and skipping them lets two stacks coexist on one machine.
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def components() -> dict[str, list[str]]:
    """COMPONENTS plus, under CeleryExecutor, the workers (they have no entry in the health endpoint)."""
    found = dict(COMPONENTS)
    if os.environ.get("DAGSPEC_EXECUTOR") == "CeleryExecutor":
        home = Layout().home
        for i in range(1, int(os.environ.get("DAGSPEC_CELERY_WORKERS", "2")) + 1):
            name = f"worker-{i}"
            # Own hostname and pid file: two workers of one AIRFLOW_HOME would otherwise collide.
            found[name] = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs",
                           "--pid", str(home / f"{name}.pid"),
                           "--concurrency", os.environ.get("DAGSPEC_CELERY_CONCURRENCY", "2")]
    return found


# The name each job-based component has in /api/v2/monitor/health.
HEALTH_NAMES = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}

# Every process of a stack inherits this variable: task processes put themselves in process
# groups of their own, so killing the components' groups alone can miss them.
MARKER = "DAGSPEC_DEV_STACK"
STOP_GRACE_S = 20
READY_TIMEOUT_S = int(os.environ.get("DAGSPEC_UP_TIMEOUT", "300"))
ADMIN = "admin"

TUNABLE = {
    # LocalExecutor forks all `parallelism` workers up front: 32 by default is a lot for a laptop.
    "AIRFLOW__CORE__PARALLELISM": "4",
    # Look for new DAG files every 30 s instead of 300 s, and re-parse a file after 30 s.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
}


class Shutdown(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM, SIGHUP)."""


class Layout:
    def __init__(self) -> None:
        self.home = Path(os.environ.get("AIRFLOW_HOME") or REPO / ".local" / "airflow").resolve()
        self.data = Path(os.environ.get("DAGSPEC_HOME") or REPO / ".local" / "data").resolve()
        self.dags = Path(os.environ.get("DAGSPEC_DAGS_FOLDER") or REPO / "dags").resolve()
        self.port = int(os.environ.get("DAGSPEC_PORT", "8080"))
        self.logs = self.home / "logs"
        self.pids_file = self.home / "dev_stack.pids"
        self.password_file = self.home / "simple_auth_manager_passwords.json.generated"
        self.secrets_file = self.home / "dev_stack_secrets.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def say(message: str) -> None:
    # A closed terminal or pipe (`make up | tee`, then Ctrl-C) must not cut a shutdown short.
    with contextlib.suppress(OSError):
        print(message, flush=True)


# ---------------------------------------------------------------- configuration


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_private_json(path: Path, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def ensure_secrets(lay: Layout) -> dict:
    """Keys every component must share; Airflow would otherwise draw some per process."""
    stored = _read_json(lay.secrets_file)
    wanted = {
        "jwt_secret": lambda: secrets.token_urlsafe(32),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    missing = {k: make() for k, make in wanted.items() if not stored.get(k)}
    if missing:
        stored.update(missing)
        _write_private_json(lay.secrets_file, stored)
    return stored


def ensure_password(lay: Layout) -> str:
    """Write SimpleAuthManager's password file ourselves, so we know (and keep) the password."""
    passwords = _read_json(lay.password_file)
    if not passwords.get(ADMIN):
        passwords[ADMIN] = secrets.token_urlsafe(12)
        _write_private_json(lay.password_file, passwords)
    return passwords[ADMIN]


def airflow_env(lay: Layout) -> dict[str, str]:
    keys = ensure_secrets(lay)
    env = dict(os.environ)
    for key, value in TUNABLE.items():
        env.setdefault(key, value)
    env.update(
        {
            MARKER: str(lay.home),
            # setproctitle (Airflow names its processes) overwrites /proc/<pid>/environ, where
            # the marker is looked up, unless told not to.
            "SPT_NOENV": "1",
            "AIRFLOW_HOME": str(lay.home),
            "DAGSPEC_HOME": str(lay.data),
            "AIRFLOW__CORE__DAGS_FOLDER": str(lay.dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # The demo's DAGs should be runnable at once, without a click on "unpause".
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # SQLite lets one writer at a time; its default 5 s wait for the lock was seen to run out under the
            # scheduler, dag-processor and api-server together (a 500 "Database error" on triggering a run).
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{lay.home / 'airflow.db'}?timeout=60",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(lay.port),
            # Task processes reach the api-server here; the default assumes localhost:8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{lay.url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(lay.password_file),
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__API__SECRET_KEY": keys["api_secret_key"],
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            # The default is <tmp>/airflow, shared by every stack on the machine.
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(lay.home / "dag_bundles"),
        }
    )
    if os.environ.get("DAGSPEC_SQL_ALCHEMY_CONN"):
        conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = os.environ["DAGSPEC_SQL_ALCHEMY_CONN"]
        if conn.startswith("postgresql+psycopg://"):
            # Airflow derives an asyncpg URL for its async engine otherwise; psycopg 3 does both.
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = conn.replace("+psycopg://", "+psycopg_async://", 1)
    if os.environ.get("DAGSPEC_EXECUTOR"):
        env["AIRFLOW__CORE__EXECUTOR"] = os.environ["DAGSPEC_EXECUTOR"]
    if env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor":
        env["AIRFLOW__CELERY__BROKER_URL"] = os.environ.get("DAGSPEC_CELERY_BROKER", "redis://127.0.0.1:6379/0")
    return env


# ---------------------------------------------------------------- processes


def _identity(pid: int) -> dict:
    return {"pid": pid, "create_time": psutil.Process(pid).create_time()}


def _is_same(record: dict) -> bool:
    """The recorded process still runs (not a zombie, not a reused pid)."""
    try:
        proc = psutil.Process(record["pid"])
        return (
            abs(proc.create_time() - record["create_time"]) < 0.01
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stack_processes(home: Path) -> list[psutil.Process]:
    """Every live process that inherited this stack's marker, wherever its process group."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(MARKER) == str(home) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _signal_group(record: dict, sig: int) -> None:
    # A leader that lives under another identity means its pid was reused: the old group is empty.
    try:
        leader = psutil.Process(record["pid"])
        if abs(leader.create_time() - record["create_time"]) >= 0.01:
            return
    except psutil.NoSuchProcess:
        pass  # its group may still hold orphans: the pgid stays reserved while they live
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record["pid"], sig)


def stop_all(home: Path, records: dict[str, dict], reap=lambda: None) -> None:
    """SIGTERM every component's group, SIGKILL what is left after the grace period."""
    for record in records.values():
        _signal_group(record, signal.SIGTERM)
    if not records:
        for proc in stack_processes(home):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        reap()
        if not stack_processes(home):
            return
        time.sleep(0.5)
    leftovers = stack_processes(home)
    say(f"  {len(leftovers)} process(es) ignored SIGTERM for {STOP_GRACE_S} s: killing them")
    for record in records.values():
        _signal_group(record, signal.SIGKILL)
    for proc in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(leftovers, timeout=5)
    reap()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def run_step(title: str, cmd: list[str], env: dict, log: Path) -> None:
    say(f"{title} ... (log: {log})")
    with log.open("a") as out:
        code = subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if code != 0:
        say(f"{title} failed with exit code {code}:\n{tail(log)}")
        raise SystemExit(1)


def sample_window_args() -> list[str]:
    """The sample's window: up to yesterday by default (the scheduler's first runs process it); the tests pin
    DAGSPEC_SAMPLE_END=2025-12-31 for their fixed dates, or shrink DAGSPEC_SAMPLE_DAYS to stay fast."""
    args = []
    if os.environ.get("DAGSPEC_SAMPLE_END"):
        args += ["--end", os.environ["DAGSPEC_SAMPLE_END"]]
    if os.environ.get("DAGSPEC_SAMPLE_DAYS"):
        args += ["--days", os.environ["DAGSPEC_SAMPLE_DAYS"]]
    return args


def has_sample_data_command(env: dict) -> bool:
    dagspec = BIN / "dagspec"
    if not dagspec.exists():
        return False
    result = subprocess.run([str(dagspec), "--help"], env=env, capture_output=True, text=True)
    return result.returncode == 0 and "sample-data" in result.stdout


# ---------------------------------------------------------------- health


def fetch_health(lay: Layout) -> dict | None:
    try:
        with urllib.request.urlopen(f"{lay.url}/api/v2/monitor/health", timeout=3) as resp:
            return json.load(resp)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def ready_components(health: dict | None, since: datetime) -> set[str]:
    """Components that answer now; job heartbeats older than this `up` belong to an earlier run."""
    if health is None:
        return set()
    ready = {"api-server"}
    for name, key in HEALTH_NAMES.items():
        info = health.get(key) or {}
        beat = info.get(f"latest_{key}_heartbeat")
        if info.get("status") == "healthy" and beat and datetime.fromisoformat(beat) >= since:
            ready.add(name)
    return ready


def ready_workers(lay: Layout, procs: dict) -> set[str]:
    """Celery workers whose log says they are ready since this `up` wrote its start line."""
    ready = set()
    for name in procs:
        if name.startswith("worker-"):
            text = (lay.logs / f"{name}.log").read_text(errors="replace")
            if " ready." in text.rsplit("dev_stack up =====", 1)[-1]:
                ready.add(name)
    return ready


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# ---------------------------------------------------------------- commands


def cmd_up() -> int:
    lay = Layout()
    lay.logs.mkdir(parents=True, exist_ok=True)
    lay.data.mkdir(parents=True, exist_ok=True)

    state = _read_json(lay.pids_file)
    if state:
        records = [state.get("supervisor"), *state.get("components", {}).values()]
        if any(r and _is_same(r) for r in records):
            say(f"a stack already runs from {lay.home}: run `make down` "
                f"(or `{Path(__file__).name} down`) first")
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

    run_step("migrating the metadata database", [str(BIN / "airflow"), "db", "migrate"], env,
             lay.logs / "db-migrate.log")
    if has_sample_data_command(env):
        run_step("creating sample data", [str(BIN / "dagspec"), "sample-data", *sample_window_args()], env,
                 lay.logs / "sample-data.log")
    else:
        say("WARNING: `dagspec sample-data` is not available: skipping the sample source data")

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
                    [str(BIN / "airflow"), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, process_group=0,
                )
        _write_private_json(lay.pids_file, {
            "home": str(lay.home), "url": lay.url,
            "supervisor": _identity(os.getpid()),
            "components": {n: _identity(p.pid) for n, p in procs.items()},
        })
        say(f"starting {', '.join(procs)} (logs: {lay.logs}/<component>.log)")

        ready: set[str] = set()
        last_note = time.monotonic()
        lost: set[str] = set()
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None and name not in lost:
                    if name.startswith("worker-") and any(
                            n.startswith("worker-") and p.poll() is None for n, p in procs.items()):
                        # As in a cluster: one lost worker is survivable, its tasks are retried elsewhere.
                        say(f"\n{name} exited with code {proc.returncode}; the other workers carry on")
                        lost.add(name)
                        continue
                    say(f"\n{name} exited with code {proc.returncode}; last lines of its log:\n"
                        f"{tail(lay.logs / f'{name}.log')}\n\nstopping the other components ...")
                    exit_code = 1
                    raise Shutdown(f"{name} died")
            if len(ready) < len(procs):
                now_ready = ready_components(fetch_health(lay), started_at) | ready_workers(lay, procs)
                for name in sorted(now_ready - ready):
                    say(f"  {name} is up ({time.monotonic() - t0:.0f} s)")
                ready |= now_ready
                waiting = [n for n in procs if n not in ready]
                if not waiting:
                    say(f"\nAirflow is ready at {lay.url}\n  login:    {ADMIN}\n  password: {password}\n"
                        f"(stored in {lay.password_file})\nCtrl-C stops every component.")
                elif time.monotonic() - t0 > READY_TIMEOUT_S:
                    say(f"\nnot healthy after {READY_TIMEOUT_S} s: {', '.join(waiting)}")
                    for name in waiting:
                        say(f"--- {name}.log ---\n{tail(lay.logs / f'{name}.log')}")
                    exit_code = 1
                    raise Shutdown("timeout")
                elif time.monotonic() - last_note >= 15:
                    say(f"  waiting for {', '.join(waiting)} ({time.monotonic() - t0:.0f} s)")
                    last_note = time.monotonic()
            time.sleep(1)
    except Shutdown as why:
        say(f"stopping the stack ({why}) ...")
    finally:
        # A second Ctrl-C must not leave the stop half done.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stop_all(lay.home, {n: _identity_or_pid(p) for n, p in procs.items()}, reap)
        lay.pids_file.unlink(missing_ok=True)
        say("stopped")
    return exit_code


def _identity_or_pid(proc: subprocess.Popen) -> dict:
    try:
        return _identity(proc.pid)
    except psutil.NoSuchProcess:
        return {"pid": proc.pid, "create_time": 0.0}


def cmd_down() -> int:
    lay = Layout()
    state = _read_json(lay.pids_file)
    supervisor = state.get("supervisor")
    if supervisor and _is_same(supervisor):
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
    state = _read_json(lay.pids_file)
    components = state.get("components", {})
    if not components:
        say(f"no stack recorded in {lay.pids_file}")
        return 1
    health = fetch_health(lay)
    ready = ready_components(health, datetime.min.replace(tzinfo=UTC))
    running = 0
    for name, record in components.items():
        alive = _is_same(record)
        running += alive
        mark = ("running, healthy" if name in ready else "running") if alive else "stopped"
        say(f"{name:14} pid {record['pid']:<8} {mark}")
    say(f"api: {state.get('url')} ({'answers' if health else 'does not answer'})")
    return 0 if running == len(components) else 1


def main(argv: list[str]) -> int:
    commands = {"up": cmd_up, "down": cmd_down, "status": cmd_status}
    if len(argv) != 1 or argv[0] not in commands:
        say(f"usage: {Path(__file__).name} up|down|status")
        return 2
    try:
        return commands[argv[0]]()
    except KeyboardInterrupt:  # before the components start, e.g. during the migration
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
