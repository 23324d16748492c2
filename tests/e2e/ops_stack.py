"""A running Airflow stack for the operations tests: scripts/dev_stack.py `up` on a PostgreSQL
metadata DB of its own (and optionally CeleryExecutor + Redis), serving a temporary dags folder.

Used as a context manager by test_backfill.py, test_celery.py and test_definitions_page.py; it
reuses the helpers of test_dev_stack.py (polling, log tails, leftover check).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests
from support.pinned_examples import FIXED_END, pinned_copy
from test_dev_stack import REPO, SCRIPT, Stack, free_port, poll, stack_leftovers, stop_stack

from dagspec.dag_files import write_loaders

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
UP_WAIT_S = 420  # migration of a fresh PostgreSQL DB plus every component, on 2 busy cores


def postgres_up() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


def redis_up() -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(2)
        if sock.connect_ex(("127.0.0.1", 6379)) != 0:
            return False
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


@contextlib.contextmanager
def postgres_db(prefix: str) -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards; yields its SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dags_folder(root: Path, definitions: list[str]) -> Path:
    """The loader plus the named example definitions (others may be work in progress), ending with the fixed
    sample (support/pinned_examples.py)."""
    dags = root / "dags"
    (dags / "definitions").mkdir(parents=True)
    write_loaders(dags)
    for name in definitions:
        pinned_copy(REPO / "dags" / "definitions" / name, dags / "definitions" / name)
    return dags


class OpsStack(Stack):
    def get(self, path: str, **params) -> dict:
        # On two cores shared with other suites the api-server can stall for a while: wait it out.
        for attempt in range(4):
            try:
                resp = self.session.get(f"{self.url}{path}", params=params, timeout=60)
                break
            except (requests.Timeout, requests.ConnectionError):
                if attempt == 3 or self.proc.poll() is not None:
                    raise
                time.sleep(5)
        resp.raise_for_status()
        return resp.json()

    def post(self, path: str, body: dict) -> dict:
        resp = self.session.post(f"{self.url}{path}", json=body, timeout=120)
        assert resp.status_code in (200, 201), f"{path}: {resp.status_code} {resp.text}"
        return resp.json()

    def patch(self, path: str, body: dict) -> dict:
        resp = self.session.patch(f"{self.url}{path}", json=body, timeout=60)
        assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text}"
        return resp.json()

    def password(self) -> str:
        return json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]

    def runs(self, dag_id: str, **params) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns", limit=1000, order_by="logical_date", **params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}/taskInstances"
        return self.get(path, limit=1000)["task_instances"]

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """The `airflow` CLI against this stack's metadata DB and configuration."""
        return subprocess.run([str(Path(sys.executable).with_name("airflow")), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def component_logs(self, *names: str) -> str:
        from test_dev_stack import tail

        return "\n".join(f"--- {n}.log ---\n{tail(self.home / 'logs' / f'{n}.log', 30)}" for n in names)


def stack_env(env: dict[str, str]) -> dict[str, str]:
    """What `airflow ...` and `dagspec ...` need to reach a stack: dev_stack.py's own configuration."""
    saved = dict(os.environ)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from devstack.config import airflow_env
        from devstack.layout import Layout

        os.environ.clear()
        os.environ.update(env)  # Layout() and airflow_env() read the stack's settings from here
        return airflow_env(Layout())
    finally:
        os.environ.clear()
        os.environ.update(saved)
        sys.path.remove(str(SCRIPT.parent))


@contextlib.contextmanager
def running_stack(root: Path, dags: Path, db_url: str | None, dag_ids: list[str],
                  **extra_env: str) -> Iterator[OpsStack]:
    """dev_stack.py up with these settings (db_url None: its SQLite default); yields once every component is
    up and every DAG is listed."""
    home, data = root / "airflow", root / "data"
    # The fixed 2025 sample the operations tests' dates are in, unless a test asks for another window.
    env = dict(os.environ, AIRFLOW_HOME=str(home), DAGSPEC_HOME=str(data), DAGSPEC_PORT=str(free_port()),
               DAGSPEC_DAGS_FOLDER=str(dags), DAGSPEC_UP_TIMEOUT=str(UP_WAIT_S), DAGSPEC_SAMPLE_END=FIXED_END)
    env.update(extra_env)
    if db_url:
        env["DAGSPEC_SQL_ALCHEMY_CONN"] = db_url
    output = root / "up.out"
    with output.open("w") as out:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "up"], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stack = OpsStack(proc, home, output, f"http://127.0.0.1:{env['DAGSPEC_PORT']}", dag_ids, dag_ids[0], False)
    try:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"`up` exited with {proc.returncode}\n{stack.logs()}")
            return "Airflow is ready" in output.read_text()

        poll(lambda: f"stack not ready after {UP_WAIT_S} s\n{stack.logs()}", UP_WAIT_S + 30, ready, every=3)
        stack.env = stack_env(env)
        resp = requests.post(f"{stack.url}/auth/token", json={"username": "admin", "password": stack.password()},
                             timeout=30)
        assert resp.status_code == 201, resp.text
        stack.session = requests.Session()
        stack.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

        def listed():
            dags = {d["dag_id"] for d in stack.get("/api/v2/dags", limit=1000)["dags"]}
            return set(dag_ids) <= dags

        poll(lambda: f"DAGs {dag_ids} never listed: "
             f"{json.dumps(stack.get('/api/v2/importErrors'))[:2000]}\n{stack.logs()}", 240, listed, every=5)
        yield stack
    finally:
        stop_stack(proc, env)
        deadline = time.monotonic() + 30
        while stack_leftovers(home) and time.monotonic() < deadline:
            time.sleep(1)
