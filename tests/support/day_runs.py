"""A definition written to a test's folder and run in this process for one scheduled day."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition


def write_definition(folder: Path, dag_id: str, steps: list[dict], **fields) -> Path:
    path = folder / f"{dag_id}.json"
    path.write_text(json.dumps({"dag_id": dag_id, "start_date": "2025-01-01", **fields, "steps": steps}))
    return path


def run_day(path: Path, day: date) -> dict:
    """Every step of the definition for the scheduled run of `day` (results by step id)."""
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, day))
