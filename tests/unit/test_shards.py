"""Definitions split over loader files: each builds exactly its share, and folder-wide rules still see all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dagspec.airflow.loader import stub_name, sync_error_stubs
from dagspec.dag_files import FOLDER, loader_name, loader_text, write_loaders
from dagspec.spec.discovery import scan
from dagspec.spec.shards import index_dir, shard_of

SHARES = 4


def definition(dag_id: str) -> dict:
    return {"dag_id": dag_id, "start_date": "2025-01-01", "steps": [
        {"id": "extract", "kind": "extract", "source": {"table": "orders"},
         "target": {"schema": f"raw_{dag_id}", "table": "orders"}}]}


@pytest.fixture()
def folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DAGSPEC_CACHE", str(tmp_path / "cache"))
    defs = tmp_path / "dags" / "definitions"
    defs.mkdir(parents=True)
    for i in range(40):
        (defs / f"p{i:02d}.json").write_text(json.dumps(definition(f"p{i:02d}")))
    (defs / "broken.json").write_text("{")
    return defs


def _same_share_and_other(names: list[str]) -> tuple[str, str]:
    """Two file names that hash to different shares."""
    first = names[0]
    other = next(n for n in names if shard_of(n, SHARES) != shard_of(first, SHARES))
    return first, other


def shares(defs: Path) -> list[tuple[dict, dict]]:
    return [scan(defs, shard=(i, SHARES)) for i in range(SHARES)]


def test_every_definition_is_built_by_exactly_one_share(folder):
    results = shares(folder)
    built = [p.name for good, _ in results for p in good]
    assert sorted(built) == sorted(f"p{i:02d}.json" for i in range(40))  # each once, none twice
    assert sum(len(g) > 0 for g, _ in results) == SHARES  # 40 files spread over all shares
    errors = [p.name for _, bad in results for p in bad]
    assert errors == ["broken.json"]  # reported by its own share only


@pytest.mark.parametrize("warm", [False, True], ids=["cold-index", "warm-index"])
def test_a_duplicate_dag_id_across_shares_fails_both_files(folder, warm):
    a, b = _same_share_and_other(sorted(p.name for p in folder.glob("p*.json")))
    if warm:
        shares(folder)  # every share has written its index
    (folder / b).write_text(json.dumps(definition(a.removesuffix(".json")) | {"description": "copy"}))
    results = shares(folder)
    failed = {p.name: str(e) for _, bad in results for p, e in bad.items()}
    assert a in failed and b in failed, failed
    assert f"is also used by definitions/{b}" in failed[a]
    assert all(a not in {p.name for p in good} and b not in {p.name for p in good} for good, _ in results)


def test_a_stale_or_torn_index_never_gives_a_wrong_answer(folder):
    shares(folder)
    a, b = _same_share_and_other(sorted(p.name for p in folder.glob("p*.json")))
    # b's share has not re-parsed since b changed: its index still says b has its old dag_id.
    (folder / b).write_text(json.dumps(definition(a.removesuffix(".json"))))
    good, bad = scan(folder, shard=(shard_of(a, SHARES), SHARES))
    assert a in {p.name for p in bad}
    # A torn index file, and one of a foreign format, are ignored (the files get validated instead).
    for path in index_dir(folder).glob("share-*.json"):
        path.write_text('{"version": 1, "files": {"p00.json": {"t": [1, 2], "id": 5}}' if "0-of" in path.name
                        else "[1, 2")
    good, bad = scan(folder, shard=(shard_of(a, SHARES), SHARES))
    assert a in {p.name for p in bad}


def test_each_share_keeps_only_its_own_error_stubs(folder):
    (folder / "gone.json").write_text("{")
    results = shares(folder)
    for i, (_, bad) in enumerate(results):
        sync_error_stubs(folder, bad, (i, SHARES))
    stubs = folder.parent / "_definition_errors"
    assert {p.name for p in stubs.glob("*.py")} == {stub_name(folder / "broken.json"), stub_name(folder / "gone.json")}
    (folder / "gone.json").unlink()
    (folder / "broken.json").write_text(json.dumps(definition("fixed")))
    for i in range(SHARES):  # every share runs again; each removes only what is its own (or nobody's)
        sync_error_stubs(folder, scan(folder, shard=(i, SHARES))[1], (i, SHARES))
    assert not list(stubs.glob("*.py"))


def test_loader_files_hold_nothing_but_their_share(tmp_path):
    written = write_loaders(tmp_path, 3)
    assert [p.name for p in written] == [loader_name(i, 3) for i in range(3)]
    assert {p.parent for p in written} == {tmp_path / FOLDER}
    assert written[1].read_text() == loader_text(1, 3) and "shard=(1, 3)" in loader_text(1, 3)
    (tmp_path / "pipelines.py").write_text("from dagspec.airflow.loader import load_dags\n")  # the old single loader
    (tmp_path / "mine.py").write_text("# a user's own DAG file\n")
    again = write_loaders(tmp_path, 2)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.py")) == sorted(
        [f"{FOLDER}/{loader_name(0, 2)}", f"{FOLDER}/{loader_name(1, 2)}", "mine.py"])
    assert len(again) == 2
    mtime = os.stat(again[0]).st_mtime_ns
    write_loaders(tmp_path, 2)  # unchanged files are not rewritten: Airflow would re-parse them for nothing
    assert os.stat(again[0]).st_mtime_ns == mtime
    with pytest.raises(ValueError):
        write_loaders(tmp_path, 0)


def test_the_first_share_of_a_cold_folder_indexes_the_others_so_later_shares_validate_only_their_own(folder,
                                                                                                     monkeypatch):
    import dagspec.spec.discovery as discovery

    scan(folder, shard=(0, SHARES))  # no index yet: it validates every other share's files...
    written = sorted(p.name for p in index_dir(folder).glob("share-*.json"))
    assert written == [f"share-{i}-of-{SHARES}.json" for i in range(SHARES)]  # ...and writes their indexes
    loaded: list[str] = []
    real = discovery.load_in_place

    def counting(path, *args, **kwargs):
        loaded.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(discovery, "load_in_place", counting)
    good, bad = scan(folder, shard=(1, SHARES))
    mine = sorted(p.name for p in folder.glob("*.json") if shard_of(p.name, SHARES) == 1)
    assert sorted(loaded) == mine  # its own files only, not the 30-odd others again
    assert sorted(p.name for p in [*good, *bad]) == mine


def test_an_index_another_share_wrote_still_catches_a_duplicate_made_after_it(folder):
    a, b = _same_share_and_other(sorted(p.name for p in folder.glob("p*.json")))
    scan(folder, shard=(0, SHARES))  # every index written, some by share 0 on the others' behalf
    (folder / b).write_text(json.dumps(definition(a.removesuffix(".json"))))  # b now claims a's dag_id
    results = shares(folder)
    bad = {p.name for _, errors in results for p in errors}
    assert {a, b} <= bad
