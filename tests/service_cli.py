"""`python tests/<service>.py setup|serve`: build a test service's environment, or run it by hand."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, ContextManager


def main(ensure: Callable[[], object], running: Callable[[Path], ContextManager[dict]], workdir: Path,
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
