"""The definitions folder -> DAGs, with each bad definition reported as its own Airflow import error.

Airflow files an import error under the .py file that raised it, and its dag-processor only looks
at .py files. So the loader files build the valid DAGs themselves, each its own share of the folder
(spec/shards.py: a bounded amount of work per file whatever the folder holds; a worker builds just
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
from collections import defaultdict
from pathlib import Path

from dagspec.paths import sql_dir
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.load import load_definition
from dagspec.spec.model import Pipeline
from dagspec.spec.shards import Summary, read_share, shard_of, stamp_of, write_share

log = logging.getLogger(__name__)
ERRORS_DIR = "_definition_errors"


class DefinitionImportError(Exception):
    """Raised by a stub so Airflow lists the definition's problems as an import error."""


def scan(definitions_dir: Path, *, sql_root: Path | None = None, shard: tuple[int, int] = (0, 1)
         ) -> tuple[dict[Path, Pipeline], dict[Path, DefinitionError]]:
    """Every *.json under the folder (with ``shard``, of that share): valid pipelines and errors, with duplicate
    dag ids failing both files."""
    good: dict[Path, Pipeline] = {}
    bad = _walk(definitions_dir, sql_root, lambda path, pipeline: good.__setitem__(path, pipeline), shard)
    for path in [p for p in good if p in bad]:
        del good[path]
    return good, bad


def definition_files(definitions_dir: Path) -> list[Path]:
    """The folder's *.json, without hidden files (editors' and the sync's temporary files)."""
    return sorted(p for p in definitions_dir.glob("*.json") if not p.name.startswith("."))


def _walk(definitions_dir: Path, sql_root: Path | None, on_valid, shard: tuple[int, int] = (0, 1)
          ) -> dict[Path, DefinitionError]:
    """Load each definition of this loader's share once, hand each valid one to ``on_valid`` right away, return
    the share's errors.

    Handing over as we go keeps one Pipeline alive at a time when the caller builds DAGs. Files whose
    dag_id another file also uses come back as errors (both of them): the caller drops what it made.
    The other shares' definitions take part in that check through their index (see spec/shards.py).
    """
    root = definitions_dir.parent
    sql = sql_root or sql_dir()
    index, count = shard
    bad: dict[Path, DefinitionError] = {}
    summaries: dict[Path, Summary] = {}
    own: dict[str, tuple] = {}
    files = definition_files(definitions_dir)
    others = []
    for path in files:
        if shard_of(path.name, count) != index:
            others.append(path)
            continue
        stamp = stamp_of(path)
        try:
            pipeline = load_definition(path, sql_dir=sql)
        except DefinitionError as exc:
            bad[path] = _relabel(exc, path, root)
            own[path.name] = (stamp, None)
            continue
        summaries[path] = summary_of(pipeline)
        own[path.name] = (stamp, summaries[path])
        on_valid(path, pipeline)
    if count > 1:
        write_share(definitions_dir, index, count, own)
        summaries.update(_other_summaries(definitions_dir, others, sql, shard))
    for path, error in _conflicts(summaries, root).items():
        if shard_of(path.name, count) == index:
            bad[path] = error
    return bad


def summary_of(pipeline: Pipeline) -> Summary:
    return Summary(pipeline.dag_id)


def _other_summaries(definitions_dir: Path, paths: list[Path], sql: Path, shard: tuple[int, int]) -> dict[Path, Summary]:
    """The other shares' valid definitions, from their indexes where those still describe the file."""
    index, count = shard
    known: dict[str, tuple] = {}
    for other in range(count):
        if other != index:
            known.update(read_share(definitions_dir, other, count))
    out: dict[Path, Summary] = {}
    for path in paths:
        entry = known.get(path.name)
        if entry is not None and entry[0] == stamp_of(path):
            summary = entry[1]
        else:  # new, changed, or its share's index is not written yet
            try:
                summary = summary_of(load_definition(path, sql_dir=sql))
            except DefinitionError:
                summary = None
        if summary is not None:
            out[path] = summary
    return out


def _conflicts(summaries: dict[Path, Summary], root: Path) -> dict[Path, DefinitionError]:
    by_id: dict[str, list[Path]] = defaultdict(list)
    for path, summary in summaries.items():
        by_id[summary.dag_id].append(path)
    bad: dict[Path, DefinitionError] = {}
    for dag_id, paths in by_id.items():
        if len(paths) < 2:
            continue
        for path in paths:
            others = ", ".join(_rel(p, root) for p in sorted(paths) if p != path)
            bad[path] = DefinitionError(
                [Problem(_rel(path, root), "$.dag_id", f"dag_id {dag_id!r} is also used by {others}; neither is loaded",
                         "give each definition its own dag_id")]
            )
    return bad


def load_dags(definitions_dir: Path, *, write_stubs: bool = True, shard: tuple[int, int] = (0, 1)) -> dict:
    """Build the DAGs of a definitions folder (with ``shard=(i, k)``, only the i-th of k shares); called from
    the loader file(s) in the DAGs folder at parse time."""
    from airflow.sdk import get_parsing_context

    from dagspec.airflow.build import build_dag

    wanted = get_parsing_context().dag_id
    if wanted is not None:
        # A worker running one task: build that DAG only, found without reading every definition.
        found = _find(definitions_dir, wanted)
        if found is not None and shard_of(found[0].name, shard[1]) == shard[0]:
            return {wanted: build_dag(found[1], found[0])}
    built: dict[Path, object] = {}

    def build(path: Path, pipeline: Pipeline) -> None:
        if wanted is None or pipeline.dag_id == wanted:
            built[path] = build_dag(pipeline, path)

    bad = _walk(definitions_dir, None, build, shard)
    if write_stubs and wanted is None:
        # Only the dag-processor keeps stubs in step; a worker running one task just reads.
        sync_error_stubs(definitions_dir, bad, shard)
    for path, error in bad.items():
        log.error("dagspec: invalid definition %s\n%s", path, error)
    return {dag.dag_id: dag for path, dag in built.items() if path not in bad}


def _find(definitions_dir: Path, dag_id: str) -> tuple[Path, Pipeline] | None:
    """The definition of ``dag_id``: by file name first (the usual case), else by a text search."""
    named = definitions_dir / f"{dag_id}.json"
    candidates = [named] if named.is_file() else []
    needle = json.dumps(dag_id).encode()
    if not candidates:
        candidates = [p for p in definition_files(definitions_dir) if needle in _read(p)]
    for path in candidates:
        try:
            pipeline = load_definition(path, sql_dir=sql_dir())
        except DefinitionError:
            continue
        if pipeline.dag_id == dag_id:
            return path, pipeline
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _relabel(error: DefinitionError, path: Path, root: Path) -> DefinitionError:
    """Name files relative to the dags folder: the same text in the UI, the CLI and every container."""
    rel = _rel(path, root)
    return DefinitionError(Problem(rel, p.path, p.message, p.fix) for p in error.problems)


def stub_name(definition: Path) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", definition.stem)
    if safe != definition.stem:  # 'a-b.json' and 'a_b.json' must not share one stub
        safe += "_" + hashlib.sha1(definition.name.encode()).hexdigest()[:6]
    return safe + ".py"


def sync_error_stubs(definitions_dir: Path, bad: dict[Path, DefinitionError], shard: tuple[int, int] = (0, 1)) -> None:
    """Stubs of this share's invalid definitions written, those of its fixed ones removed. A stub whose definition
    no longer exists belongs to no share: the first one removes it."""
    folder = definitions_dir.parent / ERRORS_DIR
    index, count = shard
    wanted = {stub_name(path): _stub_text(path, error) for path, error in bad.items()}
    try:
        if wanted:
            folder.mkdir(exist_ok=True)
        existing = {p.name: p for p in folder.glob("*.py")} if folder.is_dir() else {}
        if existing:
            owner = {stub_name(p): shard_of(p.name, count) for p in definition_files(definitions_dir)}
            for name, path in existing.items():
                if name not in wanted and owner.get(name, 0) == index:
                    path.unlink(missing_ok=True)
        for name, text in wanted.items():
            target = folder / name
            if target.exists() and target.read_text() == text:
                continue  # unchanged: keep the mtime so Airflow does not re-parse it for nothing
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, target)
    except OSError as exc:  # a read-only dags folder (git bundle): errors still go to the log
        log.warning("dagspec: cannot write definition error stubs in %s: %s", folder, exc)


def _stub_text(definition: Path, error: DefinitionError) -> str:
    digest = _digest(definition)
    return (
        f"# Generated by dagspec: definitions/{definition.name} is invalid. This file makes Airflow list its\n"
        "# errors as an import error of their own. Fix the definition and this file goes away. Do not edit.\n"
        "from dagspec.airflow.loader import report_definition  # airflow dag\n\n"
        f"PROBLEMS = {str(error)!r}\n\n"
        "# The traceback in the UI shows this line, so the problems are not repeated in it.\n"
        f"report_definition(__file__, {definition.name!r}, {digest!r}, PROBLEMS)\n"
    )


def _digest(path: Path) -> str:
    try:
        return hashlib.sha1(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def report_definition(stub_file: str, definition_name: str, digest: str, message: str) -> None:
    """Raise the definition's errors, unless it changed since the stub was written (then re-check it)."""
    definition = Path(stub_file).resolve().parent.parent / "definitions" / definition_name
    if not definition.exists():
        return
    if _digest(definition) == digest:
        raise DefinitionImportError("\n" + message)
    try:
        load_definition(definition, sql_dir=sql_dir())
    except DefinitionError as exc:
        raise DefinitionImportError("\n" + str(_relabel(exc, definition, definition.parent.parent))) from None
