"""local-bigquery 0.3.2 as a separate process on loopback, in its own Python 3.13 venv under .local/.

The emulator needs Python >= 3.13 and DuckDB extensions that it would otherwise download at run
time (which fails offline), so the venv gets duckdb==1.5.5 plus the extension wheels, and the
extension files are copied into the HOME the emulator process runs with. `ensure()` is idempotent
and is what the session fixture calls, so `make test` on a new machine builds it by itself.

    cd tests && python -m support.bigquery_emulator setup     # build (or check) the venv
    cd tests && python -m support.bigquery_emulator serve     # run one in the foreground (for poking at it)
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from support.service_cli import LOCAL, die_with_parent, free_port, main

BASE = LOCAL / "bigquery-emulator"
VENV = BASE / "venv"
HOME = BASE / "home"
PYTHON_VERSION = "3.13"
PINS = ["local-bigquery==0.3.2", "duckdb==1.5.5"]
EXTENSIONS = ["ducklake", "icu", "spatial", "avro", "httpfs"]
DUCKDB_VERSION = "1.5.5"
STAMP = VENV / ".dagspec-ready"
PROJECT = "dagspec-test"


def _python313() -> str:
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(f"{root}/versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}"), reverse=True)
    candidates.append(shutil.which(f"python{PYTHON_VERSION}"))
    for c in candidates:
        # A pyenv shim exists even when the version is not selected; check that it runs.
        if c and subprocess.run([c, "-c", "pass"], capture_output=True).returncode == 0:
            return c
    raise RuntimeError(f"local-bigquery needs Python {PYTHON_VERSION} (pyenv install {PYTHON_VERSION}); none found")


def ensure() -> Path:
    """Build the emulator's venv and HOME once; later calls only check the stamp."""
    wanted = " ".join(PINS + [f"duckdb-extension-{e}=={DUCKDB_VERSION}" for e in EXTENSIONS])
    if STAMP.exists() and STAMP.read_text() == wanted:
        return VENV / "bin" / "local-bigquery"
    shutil.rmtree(VENV, ignore_errors=True)
    BASE.mkdir(parents=True, exist_ok=True)
    subprocess.run([_python313(), "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + wanted.split(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # DuckDB looks for extensions in $HOME/.duckdb/extensions/v<version>/<platform>/.
    platform = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import duckdb; print(duckdb.execute('PRAGMA platform').fetchone()[0])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    target = HOME / ".duckdb" / "extensions" / f"v{DUCKDB_VERSION}" / platform
    target.mkdir(parents=True, exist_ok=True)
    site = next((VENV / "lib").glob("python3.*/site-packages"))
    for ext in EXTENSIONS:
        found = list(site.glob(f"duckdb_extension_{ext}/extensions/v{DUCKDB_VERSION}/*.duckdb_extension"))
        if not found:
            raise RuntimeError(f"duckdb-extension-{ext} wheel has no extension file")
        for f in found:
            shutil.copy(f, target / f.name)
    STAMP.write_text(wanted)
    return VENV / "bin" / "local-bigquery"


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"local-bigquery exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(f"local-bigquery did not open port {port}: {log.read_text()[-2000:]}")


@contextmanager
def running(workdir: Path) -> Iterator[dict]:
    """Start one emulator on free loopback ports; yields its endpoints, stops it by PID afterwards."""
    exe = ensure()
    http_port, grpc_port = free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "local-bigquery.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "VIRTUAL_ENV"))}
    env["HOME"] = str(HOME)
    cmd = [str(exe), "serve", "--host", "127.0.0.1", "--port", str(http_port), "--grpc-port", str(grpc_port),
           "--project", PROJECT, "--data-dir", str(workdir / "data")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                preexec_fn=die_with_parent)
    try:
        _wait_port(http_port, proc, log)
        yield {"endpoint": f"http://127.0.0.1:{http_port}", "grpc": f"127.0.0.1:{grpc_port}", "project": PROJECT,
               "log": str(log)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(endpoint: str, project: str = PROJECT):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=endpoint))


if __name__ == "__main__":
    main(ensure, running, BASE / "manual", __doc__)

