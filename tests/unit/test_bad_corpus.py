"""The bad-definition corpus: every file in tests/definitions/bad/ gives exactly the errors in its .expected.

A .expected file holds one line per problem, `JSON path: message (fix: ...)`, in the order they are
reported; `{dir}` stands for the folder the definitions sit in. The 5 MB file is made here rather
than kept in git.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "definitions"
BAD = CORPUS / "bad"
GOOD = CORPUS / "good"
DAGSPEC = Path(sys.executable).with_name("dagspec")
HUGE_BYTES = 5 * 1024 * 1024


def expected(folder_name: str) -> dict[str, list[str]]:
    """definition file name -> its exact problem lines, as `dagspec validate` prints them."""
    out = {}
    for path in sorted(BAD.glob("*.expected")):
        lines = path.read_text().splitlines()
        out[f"{path.stem}.json"] = [f"{folder_name}/{path.stem}.json: " + line.replace("{dir}", folder_name)
                                    for line in lines]
    return out


def write_huge(folder: Path) -> None:
    """A syntactically valid definition of exactly 5 MiB (a wrong file dropped by mistake)."""
    head = '{"dag_id": "huge", "start_date": "2025-01-01", "steps": [], "description": "'
    tail = '"}\n'
    (folder / "huge_5mb.json").write_text(head + "x" * (HUGE_BYTES - len(head) - len(tail)) + tail)


@pytest.fixture()
def bad_folder(tmp_path) -> Path:
    folder = tmp_path / "bad"
    shutil.copytree(BAD, folder, ignore=shutil.ignore_patterns("*.expected"))
    write_huge(folder)
    return folder


def by_file(stdout: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for line in stdout.splitlines():
        found[line.split(": ", 1)[0].rsplit("/", 1)[-1]].append(line)
    return dict(found)


def test_corpus_is_complete():
    definitions = {p.name for p in BAD.glob("*.json")} | {"huge_5mb.json"}
    answers = {f"{p.stem}.json" for p in BAD.glob("*.expected")}
    assert definitions == answers  # every bad file has its answer, and no answer is orphaned
    assert len(definitions) >= 30


def test_dagspec_validate_reports_exactly_the_expected_errors(bad_folder):
    res = subprocess.run([str(DAGSPEC), "validate", "--no-connections", str(bad_folder)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1
    want = expected("bad")
    assert by_file(res.stdout) == want
    total = sum(len(v) for v in want.values())
    assert f"0 valid definition(s), {total} problem(s)" in res.stderr


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.glob("*.json") if not p.name.startswith("dup_")))
def test_each_file_alone_gives_its_errors(name, tmp_path):
    """One file at a time (no cross-file checks): the library gives the same lines as the folder run."""
    from dagspec.paths import sql_dir
    from dagspec.spec import DefinitionError
    from dagspec.spec.load import load_definition

    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(BAD / name, folder / name)
    with pytest.raises(DefinitionError) as info:
        load_definition(folder / name, sql_dir=sql_dir())
    got = [str(p).replace(str(folder), "bad") for p in info.value.problems]
    assert got == expected("bad")[name]


def test_huge_file_is_refused_without_parsing_it(bad_folder):
    from dagspec.spec import DefinitionError
    from dagspec.spec.load import load_definition

    with pytest.raises(DefinitionError) as info:
        load_definition(bad_folder / "huge_5mb.json")
    [problem] = info.value.problems
    assert problem.path == "$" and "5,242,880 bytes" in problem.message


def test_mixed_folder_validates_every_good_definition(bad_folder):
    for path in GOOD.glob("*.json"):
        shutil.copy(path, bad_folder / path.name)
    res = subprocess.run([str(DAGSPEC), "validate", "--no-connections", str(bad_folder)], capture_output=True, text=True,
                         timeout=300)
    good = len(list(GOOD.glob("*.json")))
    assert f"{good} valid definition(s)" in res.stderr
    assert by_file(res.stdout) == expected("bad")
