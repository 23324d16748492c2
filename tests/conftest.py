"""Test-wide setup: an isolated Airflow home and data home, made before anything imports Airflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="dagspec-tests-"))

# Airflow reads its configuration when first imported: these must be set first.
os.environ["AIRFLOW_HOME"] = str(_SESSION_DIR / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_SESSION_DIR / "dags")
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["DAGSPEC_HOME"] = str(_SESSION_DIR / "data")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.pop("DAGSPEC_DEFINITIONS", None)

IN_CI = os.environ.get("CI", "").lower() == "true"

# Fixture modules, available to every test without importing them (helpers are imported normally).
pytest_plugins = [
    "support.warehouse_fixtures",
    "support.object_stores",
    "support.bigquery_fixtures",
    "support.ml_fixtures",
    "support.integrity_fixtures",
    "support.runtime_conditions",
    "support.sheets_fixtures",
    "support.redshift_standin",
    "support.smtp_sink",
    "support.alert_sinks",
]


def need(condition: bool, why: str) -> None:
    """Skip on a laptop without the service; under CI=true a missing service is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def sample_db() -> Path:
    from dagspec.sample_data import build

    path = _SESSION_DIR / "sample" / "source.db"
    build(path)
    return path


@pytest.fixture()
def data_home(tmp_path, monkeypatch, sample_db) -> Path:
    """A fresh DAGSPEC_HOME per test, with its own copy of the sample source DB."""
    home = tmp_path / "data"
    home.mkdir()
    shutil.copy(sample_db, home / "source.db")
    monkeypatch.setenv("DAGSPEC_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An initialised Airflow metadata DB (SQLite) for DagBag and dag.test()."""
    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return home


@pytest.fixture()
def dags_folder() -> Path:
    """A fresh copy of dags/ (loader + example definitions) at Airflow's configured DAGs folder.

    It must be the configured one: dag.test() serialises the DAG from that bundle.
    """
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    from dagspec.dag_files import write_loaders

    write_loaders(folder)
    shutil.copytree(ROOT / "dags" / "definitions", folder / "definitions")
    return folder
