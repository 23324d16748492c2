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
from pathlib import Path

from dagspec.paths import sql_dir
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.folder import Claim, claim_of, folder_problems, keys_of
from dagspec.spec.load import load_definition
from dagspec.spec.model import Pipeline
from dagspec.spec.shards import read_share, shard_of, stamp_of, write_share

log = logging.getLogger(__name__)
ERRORS_DIR = "_definition_errors"


class DefinitionImportError(Exception):
    """Raised by a stub so Airflow lists the definition's problems as an import error."""


def scan(definitions_dir: Path, *, sql_root: Path | None = None, check_sql: bool = False,
         shard: tuple[int, int] = (0, 1)) -> tuple[dict[Path, Pipeline], dict[Path, DefinitionError]]:
    """Every *.json under the folder (with ``shard``, of that share): valid pipelines and errors, with the folder
    rules (spec/folder.py) failing both files of a pair. ``check_sql``: render and parse every SQL too."""
    good: dict[Path, Pipeline] = {}
    bad = _walk(definitions_dir, sql_root, lambda path, pipeline: good.__setitem__(path, pipeline), check_sql, shard)
    for path in [p for p in good if p in bad]:
        del good[path]
    return good, bad


def definition_files(definitions_dir: Path) -> list[Path]:
    """The folder's *.json, without hidden files (editors' and the sync's temporary files)."""
    return sorted(p for p in definitions_dir.glob("*.json") if not p.name.startswith("."))


def _walk(definitions_dir: Path, sql_root: Path | None, on_valid, check_sql: bool = False,
          shard: tuple[int, int] = (0, 1)) -> dict[Path, DefinitionError]:
    """Load each definition of this share once, hand each valid one to ``on_valid`` right away, return the
    share's errors.

    Handing over as we go keeps one Pipeline alive at a time when the caller builds DAGs. Files the
    folder rules refuse (a dag_id or a target another file also has) come back as errors, both of
    them: the caller drops what it made. Anything ``on_valid`` raises is that file's error alone.
    The other shares' definitions take part in the folder rules through their indexes (spec/shards.py).
    """
    root = definitions_dir.parent
    sql = sql_root or sql_dir()
    index, count = shard
    bad: dict[Path, DefinitionError] = {}
    claims: dict[str, tuple[Path, Claim]] = {}
    own: dict[str, tuple] = {}
    others: list[Path] = []
    for path in definition_files(definitions_dir):
        if shard_of(path.name, count) != index:
            others.append(path)
            continue
        rel = _rel(path, root)
        stamp = stamp_of(path)
        try:
            pipeline = load_definition(path, sql_dir=sql, check_sql=check_sql)
        except DefinitionError as exc:
            bad[path] = _relabel(exc, path, root)
            own[path.name] = (stamp, None)
            continue
        claims[rel] = (path, claim_of(rel, pipeline))
        own[path.name] = (stamp, claims[rel][1])
        try:
            on_valid(path, pipeline)
        except Exception as exc:  # a dagspec bug building one DAG must not cost the others theirs
            log.exception("dagspec: building the DAG of %s failed", rel)
            bad[path] = DefinitionError([Problem(rel, "$", f"dagspec could not build this DAG: {_short(exc)}",
                                                 "the dag-processor log has the traceback; report it with the file")])
    if count > 1:
        write_share(definitions_dir, index, count, own)
        for path, claim in _met_claims(definitions_dir, others, sql, shard, [c for _, c in claims.values()]).items():
            claims[claim.file] = (path, claim)
    for rel, problems in folder_problems(c for _, c in claims.values()).items():
        path = claims[rel][0]
        if shard_of(path.name, count) == index:
            bad[path] = DefinitionError([*(bad[path].problems if path in bad else ()), *problems])
    return bad


def _met_claims(definitions_dir: Path, paths: list[Path], sql: Path, shard: tuple[int, int],
                mine: list[Claim]) -> dict[Path, Claim]:
    """The other shares' valid definitions that share a dag_id key or a written place with one of ``mine``: the
    only ones a folder rule can join to this share's files. Their indexes say which; those read in full."""
    index, count = shard
    known: dict[str, tuple] = {}
    for other in range(count):
        if other != index:
            known.update(read_share(definitions_dir, other, count))
    my_ids = {keys_of(c)[0] for c in mine}
    my_places = set().union(*(keys_of(c)[1] for c in mine)) if mine else set()
    root = definitions_dir.parent
    out: dict[Path, Claim] = {}
    for path in paths:
        entry = known.get(path.name)
        claim = None
        if entry is not None and entry[0] == stamp_of(path):
            keys = entry[1]
        else:  # new, changed, or its share's index is not written yet
            claim = _claim_or_none(path, root, sql)
            keys = keys_of(claim) if claim is not None else None
        if keys is None or (keys[0] not in my_ids and not keys[1] & my_places):
            continue
        claim = claim or _claim_or_none(path, root, sql)
        if claim is not None:
            out[path] = claim
    return out


def _claim_or_none(path: Path, root: Path, sql: Path) -> Claim | None:
    try:
        return claim_of(_rel(path, root), load_definition(path, sql_dir=sql))
    except DefinitionError:
        return None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_dags(definitions_dir: Path, *, write_stubs: bool = True, shard: tuple[int, int] = (0, 1)) -> dict:
    """Build the DAGs of a definitions folder (with ``shard=(i, k)``, only the i-th of k shares); called from
    the loader files in the DAGs folder at parse time."""
    from airflow.sdk import get_parsing_context

    from dagspec.airflow.build import build_dag

    wanted = get_parsing_context().dag_id
    if wanted is not None:
        # A worker running one task: build that DAG only, found without reading every definition.
        found = _find(definitions_dir, wanted)
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

    bad = _walk(definitions_dir, None, build, shard=shard)
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
        raise DefinitionImportError("\n" + str(_relabel(exc, definition, definition.parent.parent))) from None
