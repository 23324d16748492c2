"""The definitions folder -> DAGs, with each bad definition reported as its own Airflow import error.

Airflow files an import error under the .py file that raised it, and its dag-processor only looks
at .py files. So the loader files build the valid DAGs themselves (spec/discovery.py reads the
definitions), each its own share of the folder (spec/shards.py: a bounded amount of work per file
whatever the folder holds; a worker builds just the DAG it runs), and for each invalid definition
keep a tiny generated .py in `_definition_errors/` (or $DAGSPEC_ERRORS_DIR) whose import raises that
definition's errors. The stub goes away when the definition is fixed or deleted. Where no process
may write the DAGs folder, `dagspec validate --write-stubs` writes the same stubs in CI, to commit.
"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path

from airflow.sdk import get_parsing_context

if get_parsing_context().dag_id is not None:
    # A worker parses this file to run one task. What it has loaded so far (Airflow, ~200k objects) lives as long as
    # the process: freezing it spares the parse a full collection over it (~100 ms, twice what building the DAG
    # costs). The dag-processor does the same before it forks its parsers.
    gc.freeze()

from dagspec.error_stubs import file_digest, record_name, stub_name, sync_error_stubs
from dagspec.spec.bundles import unit_name
from dagspec.spec.discovery import find_definition, load_in_place, relabel, shared_folders, walk_share
from dagspec.spec.errors import DefinitionError
from dagspec.spec.model import Pipeline
from dagspec.spec.shards import shard_of

log = logging.getLogger(__name__)


class DefinitionImportError(Exception):
    """Raised by a stub so Airflow lists the definition's problems as an import error."""


def load_dags(definitions_dir: Path, *, write_stubs: bool = True, shard: tuple[int, int] = (0, 1)) -> dict:
    """Build the DAGs of a definitions folder (with ``shard=(i, k)``, only the i-th of k shares); called from
    the loader files in the DAGs folder at parse time."""
    # Nearly everything a parse allocates is kept (the DAGs), so the collections its allocations trigger, each a walk
    # over every live object, find almost nothing: paused, a share's parse costs a fifth less, peak memory the same.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _load_dags(definitions_dir, write_stubs, shard)
    finally:
        if paused:
            gc.enable()


def _load_dags(definitions_dir: Path, write_stubs: bool, shard: tuple[int, int]) -> dict:
    from dagspec.spec.pipeline import FRESHNESS_SUFFIX

    wanted = get_parsing_context().dag_id
    # A definition's own DAG and its '<dag_id>__freshness' DAG come from the same file.
    owner = wanted.removesuffix(FRESHNESS_SUFFIX) if wanted is not None else None
    if wanted is not None:
        # A worker running one task: build that DAG only, found without reading every definition.
        found = find_definition(definitions_dir, wanted) or (
            find_definition(definitions_dir, owner) if owner != wanted else None)
        if found is not None and shard_of(unit_name(found[0], definitions_dir), shard[1]) == shard[0]:
            try:
                return {dag.dag_id: dag for dag in _dags_of(found[1], found[0]) if dag.dag_id == wanted}
            except Exception:  # the dag-processor's full pass files it as this definition's import error
                log.exception("dagspec: building the DAG of %s failed", found[0])
                return {}
    built: dict[Path, list] = {}

    def build(path: Path, pipeline: Pipeline) -> None:
        if wanted is None or pipeline.dag_id in (wanted, owner):
            built[path] = [dag for dag in _dags_of(pipeline, path) if wanted is None or dag.dag_id == wanted]

    bad = walk_share(definitions_dir, None, build, shard=shard)
    if write_stubs and wanted is None:
        # Only the dag-processor keeps stubs in step; a worker running one task just reads.
        sync_error_stubs(definitions_dir, bad, shard)
    for path, error in bad.items():
        log.error("dagspec: invalid definition %s\n%s", path, error)
    return {dag.dag_id: dag for path, dags in built.items() if path not in bad for dag in dags}


def _dags_of(pipeline: Pipeline, path: Path) -> list:
    """The definition's DAG, then its freshness DAG when its freshness has a schedule."""
    from dagspec.airflow.build import build_dag
    from dagspec.airflow.freshness_dag import freshness_dags

    return [build_dag(pipeline, path), *freshness_dags(pipeline, path)]


def report_definition(stub_file: str, record_digest: str = "", *_older_stub: str) -> None:
    """Raise the definition's errors, unless it changed since the stub was written (then re-check it).

    A stub written by an older dagspec passes more arguments; it is replaced at the next loader parse."""
    stub = Path(stub_file).resolve()
    try:
        record = json.loads((stub.parent / record_name(stub.name)).read_text())
        # Committed stubs (validate --write-stubs) may be parsed on another machine: fall back to the folder beside.
        folder = Path(str(record.get("definitions_dir", "")))
        if not folder.is_dir():
            folder = stub.parent.parent / "definitions"
        definition = folder / _inside(str(record["definition"]))
        digest, message = str(record["digest"]), str(record["problems"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DefinitionImportError("\nthe record of this stub's definition is missing; the next parse of "
                                    "its loader file rewrites it") from None
    if not definition.exists():
        return
    if file_digest(definition) == digest:
        raise DefinitionImportError("\n" + message)
    try:
        load_in_place(definition, shared_folders())
    except DefinitionError as exc:
        raise DefinitionImportError("\n" + str(relabel(exc, definition, folder.parent))) from None


def _inside(name: str) -> Path:
    """A record's definition, kept inside the definitions folder: ``file.json`` or ``bundle/file.json``."""
    parts = [p for p in Path(name).parts if p not in ("", ".", "..", "/")][-2:]
    return Path(*parts) if parts else Path("missing.json")


__all__ = ["DefinitionImportError", "load_dags", "report_definition", "stub_name", "sync_error_stubs"]
