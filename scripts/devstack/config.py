"""The environment every component of a stack runs with: shared keys, the admin password, AIRFLOW__* settings."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess

from devstack.layout import ADMIN, BIN, MARKER, REPO, Layout, read_json, write_private_json

TUNABLE = {
    # LocalExecutor forks all `parallelism` workers up front: 32 by default is a lot for a laptop.
    "AIRFLOW__CORE__PARALLELISM": "4",
    # Look for new DAG files every 30 s instead of 300 s, and re-parse a file after 30 s.
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
}


def ensure_secrets(lay: Layout) -> dict:
    """Keys every component must share; Airflow would otherwise draw some per process."""
    stored = read_json(lay.secrets_file)
    wanted = {
        "jwt_secret": lambda: secrets.token_urlsafe(32),
        "api_secret_key": lambda: secrets.token_urlsafe(32),
        "fernet_key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    missing = {k: make() for k, make in wanted.items() if not stored.get(k)}
    if missing:
        stored.update(missing)
        write_private_json(lay.secrets_file, stored)
    return stored


def ensure_password(lay: Layout) -> str:
    """Write SimpleAuthManager's password file ourselves, so we know (and keep) the password."""
    passwords = read_json(lay.password_file)
    if not passwords.get(ADMIN):
        passwords[ADMIN] = secrets.token_urlsafe(12)
        write_private_json(lay.password_file, passwords)
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
            "AIRFLOW__CORE__AUTH_MANAGER": ("airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"),
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
