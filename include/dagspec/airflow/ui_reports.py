"""Reports in the Airflow UI: the validation and training reports under the data home, served to signed-in
users by the dagspec plugin at /dagspec/reports/..., so the link a task log prints opens in any browser
that reaches the api-server (a file:// path opens only on the worker that wrote it).

Only report files (HTML, JSON, PNG) inside the reports folder are served: no '..', no symlink out of it.
The api-server must see the same data home as the workers (one machine, or the compose stack's volume).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse

REPORT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".png": "image/png"}


def report_file(root: Path, rel: str) -> Path | None:
    """The report ``rel`` names under ``root``, or None when it is not one a browser may be given."""
    if not rel or "\x00" in rel or rel.startswith("/"):
        return None
    base = root.resolve()
    try:
        candidate = (base / rel).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    if base not in candidate.parents or candidate.suffix.lower() not in REPORT_TYPES or not candidate.is_file():
        return None
    return candidate


def add_report_routes(app: FastAPI, user: Callable[..., Any], root: Callable[[], Path]) -> None:
    @app.get("/reports/{rel:path}", dependencies=[Depends(user)])
    def report(rel: str) -> FileResponse:
        path = report_file(root(), rel)
        if path is None:
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(path, media_type=REPORT_TYPES[path.suffix.lower()])
