"""Fixtures of the model tests: a data home with the example features (made once per test module, copied
per test), and one real MLflow tracking server for the session."""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest
from conftest import need

from support import mlflow_server as server
from support.ml_runs import features_for


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
