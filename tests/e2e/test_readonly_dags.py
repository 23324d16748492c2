"""A DAGs folder nobody may write (git-sync, a read-only DAG bundle): each invalid definition still
shows as its own import error, from stubs kept in another parsed folder or committed by CI."""

from __future__ import annotations

import json
import logging
import runpy
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagspec.cli import app
from dagspec.error_stubs import stub_name

pytestmark = pytest.mark.e2e

BROKEN = {"dag_id": "broken", "steps": []}  # no start_date


def dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def test_stubs_go_to_the_errors_folder_and_the_dags_folder_is_not_written(airflow_db, dags_folder, tmp_path,
                                                                          monkeypatch):
    errors = tmp_path / "writable" / "stubs"
    monkeypatch.setenv("DAGSPEC_ERRORS_DIR", str(errors))
    (dags_folder / "definitions" / "broken.json").write_text(json.dumps(BROKEN))
    before = sorted(p.relative_to(dags_folder) for p in dags_folder.rglob("*") if "__pycache__" not in p.parts)
    bag = dagbag(dags_folder)
    assert "orders_daily" in bag.dags and "broken" not in bag.dags
    after = sorted(p.relative_to(dags_folder) for p in dags_folder.rglob("*") if "__pycache__" not in p.parts)
    assert after == before  # nothing written into the DAGs folder
    assert {p.name for p in errors.glob("*.py")} == {stub_name(Path("broken.json"))}
    (errors / "their_own_dag.py").write_text("# a DAG file of the team's own, in the same folder\n")
    stub_bag = dagbag(errors)  # the second bundle Airflow parses
    (message,) = [v for k, v in stub_bag.import_errors.items() if Path(k).name == "broken.py"]
    assert "required key 'start_date' is missing" in message and "broken.json" in message
    (dags_folder / "definitions" / "broken.json").unlink()
    dagbag(dags_folder)
    assert sorted(p.name for p in errors.iterdir()) == ["their_own_dag.py"]  # only our own files are removed


def test_validate_writes_stubs_to_commit_and_they_work_on_another_machine(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSPEC_ERRORS_DIR", raising=False)
    defs = tmp_path / "ci" / "dags" / "definitions"
    defs.mkdir(parents=True)
    (defs / "broken.json").write_text(json.dumps(BROKEN))
    result = CliRunner().invoke(app, ["validate", "--write-stubs", str(defs)])
    assert result.exit_code == 1, result.output
    stubs = defs.parent / "_definition_errors"
    assert {p.name for p in stubs.glob("*.py")} == {"broken.py"}
    deployed = tmp_path / "airflow" / "dags"  # the repository checked out elsewhere: the CI path is gone
    shutil.copytree(defs.parent, deployed)
    shutil.rmtree(tmp_path / "ci")
    with pytest.raises(Exception, match="required key 'start_date' is missing"):
        runpy.run_path(str(deployed / "_definition_errors" / "broken.py"))
    fixed = {**BROKEN, "start_date": "2025-01-01",
             "steps": [{"id": "e", "kind": "extract", "source": {"table": "orders"},
                        "target": {"schema": "raw", "table": "orders"}}]}
    (deployed / "definitions" / "broken.json").write_text(json.dumps(fixed))
    runpy.run_path(str(deployed / "_definition_errors" / "broken.py"))  # fixed before CI ran again: no error
    result = CliRunner().invoke(app, ["validate", "--write-stubs", str(deployed / "definitions")])
    assert result.exit_code == 0, result.output
    assert not list((deployed / "_definition_errors").glob("*.py"))


def test_an_unwritable_stubs_folder_is_a_clear_error_and_the_dags_still_load(airflow_db, dags_folder, tmp_path,
                                                                             monkeypatch, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")  # a file where the folder should be: writes fail as on a read-only mount, even as root
    monkeypatch.setenv("DAGSPEC_ERRORS_DIR", str(blocker))
    (dags_folder / "definitions" / "broken.json").write_text(json.dumps(BROKEN))
    with caplog.at_level(logging.WARNING):
        bag = dagbag(dags_folder)
    assert "orders_daily" in bag.dags
    assert "cannot write definition error stubs" in caplog.text and "DAGSPEC_ERRORS_DIR" in caplog.text
    result = CliRunner().invoke(app, ["validate", "--write-stubs", str(dags_folder / "definitions")])
    assert result.exit_code == 2 and "cannot write the error stubs" in result.output
    assert "Traceback" not in result.output
