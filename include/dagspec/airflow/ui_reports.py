"""Reports in the Airflow UI: the validation and training reports under the data home, served to signed-in
users by the dagspec plugin at /dagspec/reports/..., so the link a task log prints opens in any browser
that reaches the api-server (a file:// path opens only on the worker that wrote it).

Only report files (HTML, JSON, PNG) inside the reports folder are served: no '..', no symlink out of it.
The api-server must see the same data home as the workers (one machine, or the compose stack's volume).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse

if TYPE_CHECKING:
    from dagspec.partitions import PartitionKey
    from dagspec.spec.model import Pipeline

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


def latest_reports(root: Path, pipeline: Pipeline) -> list[dict[str, Any]]:
    """The newest report of each validate step (by batch_date), its verdict (no failed 'fail' check) and its
    address relative to the Definitions page (/dagspec/); for a monitor step, its newest record and plot."""
    from dagspec.spec.model import MonitorStep, ValidateStep

    out = []
    for step in pipeline.steps:
        if isinstance(step, MonitorStep):
            out.extend(latest_monitor(root, pipeline.dag_id, step.id))
        if not isinstance(step, ValidateStep):
            continue
        found = report_files(root / pipeline.dag_id / step.id)
        if not found:
            continue
        key, newest = found[-1]
        try:
            data = json.loads(newest.read_text())
            results = data.get("results", [])
        except (OSError, ValueError, AttributeError):
            continue
        # The step's own verdict where the report has one (with on_fail 'drop_rows' a failed 'fail' check may
        # have dropped its rows and passed); older reports are judged from their results.
        passed = data["passed"] if isinstance(data.get("passed"), bool) else all(
            r.get("success") or r.get("severity") != "fail" for r in results)
        rel = newest.with_suffix(".html").relative_to(root).as_posix()
        out.append({"step": step.id, "batch_date": key.display, "passed": passed,
                    "href": f"reports/{rel}"})
    return out


def report_files(folder: Path) -> list[tuple[PartitionKey, Path]]:
    """A validate step's JSON reports by partition, oldest first: `batch_date=D.json` for a daily batch,
    `batch_date=D/batch_time=HHMM[+-HHMM].json` for a sub-daily one (sorted by instant, not by name: the hour
    a zone repeats sorts by its offset otherwise). Files named otherwise are not reports."""
    from dagspec.partitions import PartitionKey

    found = []
    for path in folder.glob("batch_date=*"):
        try:
            day = date.fromisoformat(path.name.removeprefix("batch_date=").removesuffix(".json"))
        except ValueError:
            continue
        if path.is_file() and path.suffix == ".json":
            found.append((PartitionKey(day), path))
        elif path.is_dir():
            found += [(k, q) for q in path.glob("batch_time=*.json") if (k := PartitionKey.parse(day, q.stem))]
    return sorted(found, key=lambda kp: kp[0].sort_key())


def latest_monitor(root: Path, dag_id: str, step_id: str) -> list[dict[str, Any]]:
    """A monitor step's newest record (no breach: passed), linking its plot of the records over time."""
    folder = root / dag_id / step_id
    found = sorted((folder / "records").glob("*.json"))
    if not found or not (folder / "monitor.png").is_file():
        return []
    try:
        passed = not json.loads(found[-1].read_text()).get("reasons")
    except (OSError, ValueError, AttributeError):
        return []
    return [{"step": step_id, "batch_date": found[-1].stem, "passed": passed,
             "href": f"reports/{(folder / 'monitor.png').relative_to(root).as_posix()}"}]


def add_report_routes(app: FastAPI, user: Callable[..., Any], root: Callable[[], Path]) -> None:
    @app.get("/reports/{rel:path}", dependencies=[Depends(user)])
    def report(rel: str) -> FileResponse:
        path = report_file(root(), rel)
        if path is None:
            raise HTTPException(status_code=404, detail="no such report")
        return FileResponse(path, media_type=REPORT_TYPES[path.suffix.lower()])
