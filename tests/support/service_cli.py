"""What the test services (BigQuery emulator, MLflow server) share: where their venvs go, a free port, dying
with the test process, and `python -m support.<service> setup|serve` (in tests/) to build one's environment
or run it by hand."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

# Where the services' venvs are built: the checkout's .local/, ignored by git, removed by `make clean`.
LOCAL = Path(__file__).resolve().parents[2] / ".local"


def main(ensure: Callable[[], object], running: Callable[[Path], AbstractContextManager[dict]], workdir: Path,
         usage: str) -> None:
    if sys.argv[1:] == ["setup"]:
        print(ensure())
    elif sys.argv[1:] == ["serve"]:
        with running(workdir) as info:
            print(info, flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    else:
        sys.exit(usage)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """Linux: the service gets SIGTERM when the test process dies, so a killed pytest leaves no server."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
