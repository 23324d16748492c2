"""Where things live: project folders (definitions, SQL, suites) and the embedded data home.

Two layouts. In this repository (a checkout, an editable install, the compose mount) the folders
are the repository's own: dags/definitions, include/sql, include/expectations, .local/data. A
dagspec installed from a wheel into someone's Airflow keeps them beside that Airflow's DAGs folder:
<dags>/definitions, <dags>/sql, <dags>/expectations and $AIRFLOW_HOME/dagspec-data, where <dags>
is $AIRFLOW__CORE__DAGS_FOLDER or $AIRFLOW_HOME/dags (Airflow's own default). Each folder has its
environment variable, which wins in both layouts.
"""

from __future__ import annotations

import os
from pathlib import Path

_TREE = Path(__file__).resolve().parents[2]  # include/dagspec/paths.py -> the repository, when there is one
IN_REPOSITORY = (_TREE / "pyproject.toml").is_file() and (_TREE / "include" / "dagspec").is_dir()
PROJECT_ROOT = Path(os.environ.get("DAGSPEC_PROJECT_ROOT", _TREE))


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def dags_folder() -> Path:
    if "DAGSPEC_PROJECT_ROOT" in os.environ or IN_REPOSITORY:
        return PROJECT_ROOT / "dags"
    return Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or airflow_home() / "dags")


def _own(variable: str, in_repository: str, installed: str) -> Path:
    if os.environ.get(variable):
        return Path(os.environ[variable])
    if "DAGSPEC_PROJECT_ROOT" in os.environ or IN_REPOSITORY:
        return PROJECT_ROOT / in_repository
    return dags_folder() / installed


def definitions_dir() -> Path:
    return _own("DAGSPEC_DEFINITIONS", "dags/definitions", "definitions")


def sql_dir() -> Path:
    return _own("DAGSPEC_SQL_DIR", "include/sql", "sql")


def expectations_dir() -> Path:
    return _own("DAGSPEC_EXPECTATIONS_DIR", "include/expectations", "expectations")


def errors_dir(definitions: Path) -> Path:
    """Where the loader keeps the error stub of each invalid definition. Beside the definitions by default;
    $DAGSPEC_ERRORS_DIR names another folder Airflow also parses, for a DAGs folder nobody may write
    (git-sync, a read-only DAG bundle)."""
    if os.environ.get("DAGSPEC_ERRORS_DIR"):
        return Path(os.environ["DAGSPEC_ERRORS_DIR"])
    return definitions.parent / "_definition_errors"


def schema_file() -> Path:
    return PROJECT_ROOT / "include" / "schema" / "dagspec.schema.json"


def data_home() -> Path:
    """The embedded default's data: source DB, DuckDB warehouse, local object store, reports."""
    if os.environ.get("DAGSPEC_HOME"):
        return Path(os.environ["DAGSPEC_HOME"])
    if "DAGSPEC_PROJECT_ROOT" in os.environ or IN_REPOSITORY:
        return PROJECT_ROOT / ".local" / "data"
    return airflow_home() / "dagspec-data"
