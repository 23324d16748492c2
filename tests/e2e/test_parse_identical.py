"""Speeding up the loader must not change a single DAG: every DAG of the sample and test corpora, serialised the
way the dag-processor stores it, is compared with the form recorded before the parse-speed work.

After a change that is meant to alter DAGs, rewrite the record and review its diff:
    DAGSPEC_WRITE_GOLDEN=1 pytest tests/e2e/test_parse_identical.py
(DAGSPEC_DUMP_DAGS=file.json writes the full serialised forms, to diff.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden") / "serialized_dags.json"
CORPORA = {"sample": ROOT / "dags" / "definitions", "good": ROOT / "tests" / "definitions" / "good",
           "bench": None}


def _bench_definitions(folder: Path) -> None:
    """A few of the parse benchmark's 10-step pipelines (schedules, extracts, checks, transforms, publishes)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from parse_generate import pipeline
    finally:
        sys.path.remove(str(ROOT / "bench"))
    for i in range(5):
        (folder / f"shop_{i:04d}.json").write_text(json.dumps(pipeline(i)))


def serialized(dag) -> str:
    """The DAG as the dag-processor writes it to the metadata DB, minus what names this machine's paths."""
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(dag)
    data["dag"].pop("fileloc", None)
    data["dag"].pop("relative_fileloc", None)
    text = json.dumps(data, sort_keys=True, default=str)
    return text.replace(str(Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])), "<dags>")


def corpus_dags(root: Path) -> dict[str, str]:
    from dagspec.airflow.loader import load_dags

    out: dict[str, str] = {}
    for name, source in CORPORA.items():
        defs = root / name / "definitions"
        if source is None:
            defs.mkdir(parents=True)
            _bench_definitions(defs)
        else:
            shutil.copytree(source, defs)
        for dag_id, dag in sorted(load_dags(defs, write_stubs=False).items()):
            out[f"{name}/{dag_id}"] = serialized(dag)
    return out


def test_every_dag_serialises_as_before(airflow_db, monkeypatch, tmp_path):
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    monkeypatch.setenv("DAGSPEC_CACHE", str(tmp_path / "cache"))
    dags = corpus_dags(folder / "identical")
    digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in dags.items()}
    if os.environ.get("DAGSPEC_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    if os.environ.get("DAGSPEC_DUMP_DAGS"):  # the full forms, to diff when a digest differs
        Path(os.environ["DAGSPEC_DUMP_DAGS"]).write_text(
            json.dumps({k: json.loads(v) for k, v in dags.items()}, indent=1, sort_keys=True))
    want = json.loads(GOLDEN.read_text())
    assert len(dags) >= 13, sorted(dags)
    assert set(digests) == set(want)
    changed = sorted(k for k in want if digests[k] != want[k])
    assert not changed, f"these DAGs serialise differently now: {changed}"
