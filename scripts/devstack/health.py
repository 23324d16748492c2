"""Which components a stack has and which of them answer."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from datetime import datetime

from devstack.layout import Layout

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
            found[name] = [
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--skip-serve-logs",
                "--pid",
                str(home / f"{name}.pid"),
                "--concurrency",
                os.environ.get("DAGSPEC_CELERY_CONCURRENCY", "2"),
            ]
    return found


# The name each job-based component has in /api/v2/monitor/health.
HEALTH_NAMES = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


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
