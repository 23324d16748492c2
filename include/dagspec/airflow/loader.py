"""The definitions folder -> DAGs, with each bad definition reported as its own Airflow import error.

Airflow files an import error under the .py file that raised it, and its dag-processor only looks
at .py files. So the loader files build the valid DAGs themselves (spec/discovery.py reads the
definitions), each its own share of the folder (spec/shards.py: a bounded amount of work per file whatever the folder
holds; a worker builds just
the DAG it runs), and for each invalid definition keep a tiny generated .py in
`_definition_errors/` whose import raises that definition's errors. The stub goes away when the
definition is fixed or deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

from dagspec.paths import sql_dir
from dagspec.spec.discovery import definition_files, find_definition, relabel, walk_share
from dagspec.spec.errors import DefinitionError
from dagspec.spec.load import load_definition
from dagspec.spec.model import Pipeline
from dagspec.spec.shards import shard_of

log = logging.getLogger(__name__)
ERRORS_DIR = "_definition_errors"


class DefinitionImportError(Exception):
    """Raised by a stub so Airflow lists the definition's problems as an import error."""


def load_dags(definitions_dir: Path, *, write_stubs: bool = True, shard: tuple[int, int] = (0, 1)) -> dict:
    """Build the DAGs of a definitions folder (with ``shard=(i, k)``, only the i-th of k shares); called from
    the loader files in the DAGs folder at parse time."""
    from airflow.sdk import get_parsing_context

    from dagspec.airflow.build import build_dag

    wanted = get_parsing_context().dag_id
    if wanted is not None:
        # A worker running one task: build that DAG only, found without reading every definition.
        found = find_definition(definitions_dir, wanted)
        if found is not None and shard_of(found[0].name, shard[1]) == shard[0]:
            try:
                return {wanted: build_dag(found[1], found[0])}
            except Exception:  # the dag-processor's full pass files it as this definition's import error
                log.exception("dagspec: building the DAG of %s failed", found[0])
                return {}
    built: dict[Path, object] = {}

    def build(path: Path, pipeline: Pipeline) -> None:
        if wanted is None or pipeline.dag_id == wanted:
            built[path] = build_dag(pipeline, path)

    bad = walk_share(definitions_dir, None, build, shard=shard)
    if write_stubs and wanted is None:
        # Only the dag-processor keeps stubs in step; a worker running one task just reads.
        sync_error_stubs(definitions_dir, bad, shard)
    for path, error in bad.items():
        log.error("dagspec: invalid definition %s\n%s", path, error)
    return {dag.dag_id: dag for path, dag in built.items() if path not in bad}


def stub_name(definition: Path) -> str:
    """The stub's file name: the definition's stem when it is a plain identifier, else a digest of it
    ('a-b.json' and 'a_b.json' must not share one stub, and no file name is ever spelled in Python)."""
    stem = definition.stem
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,100}", stem) and definition.name == stem + ".json":
        return stem + ".py"
    return "definition_" + hashlib.sha1(definition.name.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ".py"


def sync_error_stubs(definitions_dir: Path, bad: dict[Path, DefinitionError], shard: tuple[int, int] = (0, 1)) -> None:
    """One stub per invalid definition of this share; what it reports sits beside it in a hidden JSON file.
    A share removes only its own stale stubs; one whose definition no longer exists belongs to the first."""
    folder = definitions_dir.parent / ERRORS_DIR
    index, count = shard
    wanted: dict[str, str] = {}
    for path, error in bad.items():
        name = stub_name(path)
        record = json.dumps({"definition": path.name, "digest": _digest(path), "problems": str(error)},
                            ensure_ascii=True, sort_keys=True)
        wanted[name] = _stub_text(hashlib.sha1(record.encode()).hexdigest())
        wanted[_record_name(name)] = record + "\n"
    try:
        if wanted:
            folder.mkdir(exist_ok=True)
        existing = {p.name: p for p in [*folder.glob("*.py"), *folder.glob(".*.json")]} if folder.is_dir() else {}
        owner: dict[str, int] = {}
        if existing:
            for p in definition_files(definitions_dir):
                stub = stub_name(p)
                owner[stub] = owner[_record_name(stub)] = shard_of(p.name, count)
        for name, path in existing.items():
            if name not in wanted and owner.get(name, 0) == index:
                path.unlink(missing_ok=True)
        # Records first: a stub never points at a record that is not there yet.
        for name in sorted(wanted, key=lambda n: not n.endswith(".json")):
            target = folder / name
            text = wanted[name]
            if target.exists() and target.read_text() == text:
                continue  # unchanged: keep the mtime so Airflow does not re-parse it for nothing
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, target)
    except OSError as exc:  # a read-only dags folder (git bundle): errors still go to the log
        log.warning("dagspec: cannot write definition error stubs in %s: %s", folder, exc)


def _record_name(stub: str) -> str:
    return f".{stub.removesuffix('.py')}.json"  # hidden, not .py: neither Airflow nor the loader parses it


def _stub_text(record_digest: str) -> str:
    # Only constants and a hex digest: nothing a definition holds (its name, ids, keys, the problems
    # quoting them) is ever Python source. The digest changes the file when the record does, so
    # Airflow re-parses it and shows the new problems.
    return (
        "# Generated by dagspec: a definition in ../definitions is invalid. This file makes Airflow list its\n"
        "# errors as an import error of their own. Fix the definition and this file goes away. Do not edit.\n"
        "from dagspec.airflow.loader import report_definition  # airflow dag\n\n"
        "# The traceback in the UI shows this line; the problems are in the error message above it.\n"
        f"report_definition(__file__, \"{record_digest}\")\n"
    )


def _digest(path: Path) -> str:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def report_definition(stub_file: str, record_digest: str = "", *_older_stub: str) -> None:
    """Raise the definition's errors, unless it changed since the stub was written (then re-check it).

    A stub written by an older dagspec passes more arguments; it is replaced at the next loader parse."""
    stub = Path(stub_file).resolve()
    try:
        record = json.loads((stub.parent / _record_name(stub.name)).read_text())
        definition = stub.parent.parent / "definitions" / Path(str(record["definition"])).name
        digest, message = str(record["digest"]), str(record["problems"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DefinitionImportError("\nthe record of this stub's definition is missing; the next parse of "
                                    "its loader file rewrites it") from None
    if not definition.exists():
        return
    if _digest(definition) == digest:
        raise DefinitionImportError("\n" + message)
    try:
        load_definition(definition, sql_dir=sql_dir())
    except DefinitionError as exc:
        raise DefinitionImportError("\n" + str(relabel(exc, definition, definition.parent.parent))) from None
