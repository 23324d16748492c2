"""Fixtures of the model tests: a data home with the example features (made once per test module, copied
per test), and one real MLflow tracking server for the session."""

from __future__ import annotations

import shutil
import uuid
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest
from conftest import need

from support import mlflow_server as server
from support.ml_runs import MODEL, features_for


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, sample_db) -> Path:
    """Features for 2025-01-01 .. 2025-07-14, made once; each test works on its own copy."""
    home = tmp_path_factory.mktemp("ml") / "data"
    home.mkdir()
    shutil.copy(sample_db, home / "source.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSPEC_HOME", str(home))
        features_for(date(2025, 1, 1), date(2025, 7, 15))
    return home


@pytest.fixture()
def home(prepared, tmp_path, monkeypatch) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(prepared, copy)
    monkeypatch.setenv("DAGSPEC_HOME", str(copy))
    return copy


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """One MLflow tracking server for the session (its venv built on first use); yields its URL."""
    try:
        server.ensure()
    except Exception as exc:  # no package index, no uv: skip locally, fail in CI
        need(False, f"MLflow tracking server could not be set up: {exc}")
    with ExitStack() as stack:
        try:
            info = stack.enter_context(server.running(tmp_path_factory.mktemp("mlflow-server")))
        except RuntimeError as exc:  # did not start: same rule
            need(False, f"MLflow tracking server did not start: {exc}")
        yield info


@pytest.fixture()
def registry_server(mlflow_server, home, monkeypatch):
    """`dagspec_mlflow` -> the session's server, as an Airflow http connection URI; the server starts each test
    without the example model (the experiment is renamed away: MLflow keeps a deleted experiment's name)."""
    from mlflow import MlflowClient

    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", mlflow_server["url"])
    client = MlflowClient(tracking_uri=mlflow_server["url"], registry_uri=mlflow_server["url"])
    _forget(client)
    yield {**mlflow_server, "client": client}
    _forget(client)


def _forget(client) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(MODEL)
    except MlflowException:
        pass
    found = client.get_experiment_by_name(f"dagspec/{MODEL}")
    if found is not None:
        client.rename_experiment(found.experiment_id, f"dagspec/{MODEL}-{uuid.uuid4().hex[:8]}")
        client.delete_experiment(found.experiment_id)
