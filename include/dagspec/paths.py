"""Where things live: project folders (definitions, SQL, suites) and the embedded data home."""

from __future__ import annotations

import os
from pathlib import Path

# include/dagspec/paths.py -> the project root is three levels up (editable install or mount).
PROJECT_ROOT = Path(os.environ.get("DAGSPEC_PROJECT_ROOT", Path(__file__).resolve().parents[2]))


def definitions_dir() -> Path:
    return Path(os.environ.get("DAGSPEC_DEFINITIONS", PROJECT_ROOT / "dags" / "definitions"))


def sql_dir() -> Path:
    return Path(os.environ.get("DAGSPEC_SQL_DIR", PROJECT_ROOT / "include" / "sql"))


def expectations_dir() -> Path:
    return Path(os.environ.get("DAGSPEC_EXPECTATIONS_DIR", PROJECT_ROOT / "include" / "expectations"))


def schema_file() -> Path:
    return PROJECT_ROOT / "include" / "schema" / "dagspec.schema.json"


def data_home() -> Path:
    """The embedded default's data: source DB, DuckDB warehouse, local object store, reports."""
    return Path(os.environ.get("DAGSPEC_HOME", PROJECT_ROOT / ".local" / "data"))
