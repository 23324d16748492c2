"""The loader in a real Airflow DagBag: the bad corpus mixed with good definitions, one import error per
bad definition with its exact errors, every good DAG loaded, the worker path, changes in one parse."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from test_bad_corpus import BAD, GOOD, expected, write_huge  # noqa: E402

from dagspec.dag_files import loader_path  # noqa: E402
from dagspec.spec.shards import shard_of  # noqa: E402


def dagbag(folder: Path):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def good_dag_ids() -> set[str]:
    return {json.loads(p.read_text())["dag_id"] for p in GOOD.glob("*.json")}


@pytest.fixture()
def mixed(dags_folder) -> Path:
    """dags/ with only the corpus: every bad definition and every good one."""
    defs = dags_folder / "definitions"
    shutil.rmtree(defs)
    shutil.copytree(BAD, defs, ignore=shutil.ignore_patterns("*.expected"))
    write_huge(defs)
    for path in GOOD.glob("*.json"):
        shutil.copy(path, defs / path.name)
    return dags_folder


def test_mixed_folder_loads_every_good_dag_and_one_import_error_per_bad_definition(airflow_db, mixed):
    from dagspec.airflow.loader import stub_name

    first = dagbag(mixed)
    assert set(first.dags) == good_dag_ids()  # the first pass already loads every good DAG
    bag = dagbag(mixed)  # ...and has written the stubs the next pass lists as import errors
    assert set(bag.dags) == good_dag_ids()
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    want = expected("definitions")
    assert set(errors) == {stub_name(Path(name)) for name in want}
    for name, lines in want.items():
        text = errors[stub_name(Path(name))]
        for line in lines:
            assert line in text, (name, line, text)
        # exactly these problems: no other definition's lines leak into this error
        assert text.count("definitions/") == sum(line.count("definitions/") for line in lines), (name, text)


def test_fixing_a_definition_drops_its_error_and_loads_its_dag(airflow_db, mixed):
    defs = mixed / "definitions"
    dagbag(mixed)
    good = json.loads((GOOD / "minimal.json").read_text())
    good["dag_id"] = "was_a_typo"
    good["steps"][0]["target"]["table"] = "was_a_typo"  # minimal.json owns its table
    (defs / "unknown_key_top.json").write_text(json.dumps(good))
    (defs / "dup_b.json").unlink()
    bag = dagbag(mixed)
    assert {"was_a_typo", "twin_pipeline"} <= set(bag.dags)
    names = {Path(k).name for k in bag.import_errors}
    assert "unknown_key_top.py" not in names and "dup_a.py" not in names and "dup_b.py" not in names
    assert not (mixed / "_definition_errors" / "unknown_key_top.py").exists()


def test_a_changed_definition_shows_in_the_next_parse(airflow_db, dags_folder):
    path = dags_folder / "definitions" / "orders_daily.json"
    data = json.loads(path.read_text())
    assert "nightly" not in dagbag(dags_folder).dags["orders_daily"].tags
    data["tags"].append("nightly")
    data["steps"].append({"id": "extra_export", "kind": "publish", "input": "extract_orders",
                          "export": {"format": "parquet", "target": {"schema": "exports", "table": "orders"}}})
    path.write_text(json.dumps(data))
    dag = dagbag(dags_folder).dags["orders_daily"]
    assert "nightly" in dag.tags and "extra_export" in dag.task_ids


@pytest.mark.parametrize("dag_id", ["shop_0001", "named_in_the_file"])
def test_worker_builds_only_its_own_dag(airflow_db, mixed, monkeypatch, dag_id):
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    stubs = mixed / "_definition_errors"
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, dag_id)
    # A worker parses the one loader file its DAG came from.
    name = next(p.name for p in (mixed / "definitions").glob("*.json") if f'"{dag_id}"'.encode() in p.read_bytes())
    bag = dagbag(loader_path(mixed, shard_of(name, 16)))
    assert set(bag.dags) == {dag_id}
    assert len(bag.dags[dag_id].tasks) == len(json.loads(
        next(p for p in GOOD.glob("*.json") if json.loads(p.read_text())["dag_id"] == dag_id).read_text())["steps"])
    assert not stubs.exists()  # a worker never writes stubs


def test_worker_path_reads_one_definition(airflow_db, mixed, monkeypatch):
    """The worker finds its definition by name: the other files are not even opened."""
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID

    import dagspec.airflow.loader as loader
    import dagspec.spec.discovery as discovery

    opened: list[str] = []
    real = discovery.load_definition

    def spy(path, **kw):
        opened.append(Path(path).name)
        return real(path, **kw)

    monkeypatch.setattr(discovery, "load_definition", spy)
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, "shop_0002")
    dags = loader.load_dags(mixed / "definitions")
    assert set(dags) == {"shop_0002"} and opened == ["shop_0002.json"]
