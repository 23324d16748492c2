"""The processes of a stack: who they are, finding them by their marker, stopping them, running a setup step."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from devstack.layout import MARKER, STOP_GRACE_S, say


def identity(pid: int) -> dict:
    return {"pid": pid, "create_time": psutil.Process(pid).create_time()}


def is_same(record: dict) -> bool:
    """The recorded process still runs (not a zombie, not a reused pid)."""
    try:
        proc = psutil.Process(record["pid"])
        return abs(proc.create_time() - record["create_time"]) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
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


def signal_group(record: dict, sig: int) -> None:
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
        signal_group(record, signal.SIGTERM)
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
        signal_group(record, signal.SIGKILL)
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


def identity_or_pid(proc: subprocess.Popen) -> dict:
    try:
        return identity(proc.pid)
    except psutil.NoSuchProcess:
        return {"pid": proc.pid, "create_time": 0.0}
