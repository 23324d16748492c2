"""A real MLflow tracking server (full `mlflow`, pinned to the client's version) on loopback, in its own venv.

The project's venv has mlflow-skinny, which is a client only: `mlflow server` needs the full package (Flask,
uvicorn, huey, ...). So the server gets its own venv under .local/, made with the project's uv on first use
and marked ready by a stamp file. The server runs as in production: a SQLite backend store, artifacts proxied
by the server (`--artifacts-destination`, so clients upload and download through its REST API), 1 worker.

    cd tests && python -m support.mlflow_server setup     # build (or check) the venv
    cd tests && python -m support.mlflow_server serve     # run one in the foreground (for poking at it)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from support.service_cli import LOCAL, die_with_parent, free_port, main

BASE = LOCAL / "mlflow-server"
VENV = BASE / "venv"
STAMP = VENV / ".dagspec-ready"


def _pin() -> str:
    """The server's mlflow is the client's version (mlflow-skinny in the project's venv)."""
    return f"mlflow=={version('mlflow-skinny')}"


def _uv() -> list[str]:
    for candidate in (Path(sys.executable).with_name("uv"), shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    return [sys.executable, "-m", "uv"]


def ensure() -> Path:
    """Build the server's venv once; later calls only check the stamp."""
    wanted = _pin()
    exe = VENV / "bin" / "mlflow"
    if STAMP.exists() and STAMP.read_text() == wanted and exe.exists():
        return exe
    shutil.rmtree(VENV, ignore_errors=True)
    BASE.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        subprocess.run(_uv() + ["venv", "-q", "--python", sys.executable, str(VENV)], **run)
        # Bytecode compiled now, not on every server start.
        subprocess.run(_uv() + ["pip", "install", "-q", "--compile-bytecode", "--python", str(VENV / "bin" / "python"),
                                wanted], **run)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{' '.join(map(str, exc.cmd[:3]))} failed: {exc.stderr.decode()[-2000:]}") from None
    STAMP.write_text(wanted)
    return exe


def _wait_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"mlflow server did not answer {url}/health in {timeout:.0f}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (it and its uvicorn worker), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running(workdir: Path) -> Iterator[dict]:
    """Start one tracking server on a free loopback port; yields its URL and folders, stops it by PID afterwards."""
    exe = ensure()
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "mlflow-server.log"
    store, artifacts = workdir / "mlflow.db", workdir / "artifacts"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV", "AIRFLOW_CONN_"))}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no huey job runners: nothing here schedules jobs
    cmd = [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{store}", "--artifacts-destination", str(artifacts)]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                start_new_session=True, preexec_fn=die_with_parent)
    try:
        _wait_health(url, proc, log)
        yield {"url": url, "port": port, "artifacts": artifacts, "store": store, "log": str(log),
               "startup_s": round(time.monotonic() - started, 1)}
    finally:
        _stop(proc)


if __name__ == "__main__":
    main(ensure, running, BASE / "manual", __doc__)

