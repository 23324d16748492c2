"""Where a stack lives (its folders, port, files), the names it is known by, and how it talks."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# airflow and dagspec are console scripts of the venv that runs this file.
BIN = Path(sys.executable).parent
# Named in messages as the command a user types.
SCRIPT_NAME = "dev_stack.py"

# Every process of a stack inherits this variable: task processes put themselves in process
# groups of their own, so killing the components' groups alone can miss them.
MARKER = "DAGSPEC_DEV_STACK"
STOP_GRACE_S = 20
READY_TIMEOUT_S = int(os.environ.get("DAGSPEC_UP_TIMEOUT", "300"))
ADMIN = "admin"


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


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_private_json(path: Path, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
