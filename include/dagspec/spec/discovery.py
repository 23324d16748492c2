"""Finding definitions in a folder: every *.json of it (or of one share) loaded once, with the folder rules
(spec/folder.py) applied across files and across shares (spec/shards.py); one definition found by its dag_id;
and the cached load a running task uses. No Airflow here: the CLI, the loader and the UI all read through it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from dagspec.paths import expectations_dir, sql_dir
from dagspec.spec.bundles import Folders, Listed, folders_of, listing, refuse_whole_bundles
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.folder import Claim, claim_of, folder_problems, keys_of
from dagspec.spec.load import load_definition
from dagspec.spec.model import Pipeline
from dagspec.spec.shards import keys_or_none, read_share, shard_of, write_share

log = logging.getLogger("dagspec.airflow.loader")  # the name these lines have always had in the dag-processor log


def scan(definitions_dir: Path, *, sql_root: Path | None = None, check_sql: bool = False,
         shard: tuple[int, int] = (0, 1)) -> tuple[dict[Path, Pipeline], dict[Path, DefinitionError]]:
    """Every *.json under the folder (with ``shard``, of that share): valid pipelines and errors, with the folder
    rules (spec/folder.py) failing both files of a pair. ``check_sql``: render and parse every SQL too."""
    good: dict[Path, Pipeline] = {}
    bad = walk_share(definitions_dir, sql_root, lambda path, pipeline: good.__setitem__(path, pipeline), check_sql,
                     shard)
    for path in [p for p in good if p in bad]:
        del good[path]
    return good, bad


def definition_files(definitions_dir: Path) -> list[Path]:
    """The folder's *.json and its bundles' (spec/bundles.py), without hidden files (editors' and the sync's
    temporary files)."""
    return [entry.path for entry in listing(definitions_dir)]


def shared_folders(sql_root: Path | None = None) -> Folders:
    return Folders(sql_root or sql_dir(), expectations_dir())


def load_in_place(path: Path, shared: Folders, check_sql: bool = False) -> Pipeline:
    """One definition checked against the SQL and suite files it will run with: its bundle's, else the shared
    ones. A bundle's SQL is always rendered and parsed: nobody deployed it, so nothing else checked it."""
    own = folders_of(path, shared)
    return load_definition(path, sql_dir=own.sql, suite_dir=own.suites,
                           check_sql=check_sql or own != shared)


def walk_share(definitions_dir: Path, sql_root: Path | None, on_valid: Callable[[Path, Pipeline], None],
               check_sql: bool = False, shard: tuple[int, int] = (0, 1)) -> dict[Path, DefinitionError]:
    """Load each definition of this share once, hand each valid one to ``on_valid`` right away, return the
    share's errors.

    Handing over as we go keeps one Pipeline alive at a time when the caller builds DAGs. Files the
    folder rules refuse (a dag_id or a target another file also has) come back as errors, both of
    them: the caller drops what it made. Anything ``on_valid`` raises is that file's error alone.
    The other shares' definitions take part in the folder rules through their indexes (spec/shards.py).
    """
    root = definitions_dir.parent
    shared = shared_folders(sql_root)
    index, count = shard
    bad: dict[Path, DefinitionError] = {}
    claims: dict[str, tuple[Path, Claim]] = {}
    own: dict[str, tuple] = {}
    others: list[tuple[Listed, int]] = []
    mine: list[Path] = []
    for entry in listing(definitions_dir):
        share = shard_of(entry.unit, count)
        if share != index:
            others.append((entry, share))
            continue
        path, key, stamp = entry.path, entry.key, entry.stamp
        mine.append(path)
        rel = relative_name(path, root)
        try:
            pipeline = load_in_place(path, shared, check_sql)
        except DefinitionError as exc:
            bad[path] = relabel(exc, path, root)
            own[key] = (stamp, None)
            continue
        claims[rel] = (path, claim_of(rel, pipeline))
        own[key] = (stamp, keys_or_none(claims[rel][1]))
        try:
            on_valid(path, pipeline)
        except Exception as exc:  # a dagspec bug building one DAG must not cost the others theirs
            log.exception("dagspec: building the DAG of %s failed", rel)
            bad[path] = DefinitionError([Problem(rel, "$", f"dagspec could not build this DAG: {_short(exc)}",
                                                 "the dag-processor log has the traceback; report it with the file")])
    if count > 1:
        write_share(definitions_dir, index, count, own)
        for path, claim in _met_claims(definitions_dir, others, shared, shard, [c for _, c in claims.values()]).items():
            claims[claim.file] = (path, claim)
    own_paths = set(mine)
    for rel, problems in folder_problems(c for _, c in claims.values()).items():
        path = claims[rel][0]
        if path in own_paths:
            bad[path] = DefinitionError([*(bad[path].problems if path in bad else ()), *problems])
    refuse_whole_bundles(definitions_dir, mine, bad, lambda p: relative_name(p, root))
    return bad


def _met_claims(definitions_dir: Path, paths: list[tuple[Listed, int]], shared: Folders,
                shard: tuple[int, int], mine: list[Claim]) -> dict[Path, Claim]:
    """The other shares' valid definitions that share a dag_id key or a written place with one of ``mine``: the
    only ones a folder rule can join to this share's files. Their indexes say which; those read in full.

    The files an index did not describe are validated here anyway, so their shares' indexes are written from
    what was found: on a folder's first parse the next loaders read them instead of validating the same files
    again (each loader validated every later share's files: about 8x the work at 16 shares)."""
    index, count = shard
    known: dict[int, dict[str, tuple]] = {o: read_share(definitions_dir, o, count) for o in range(count) if o != index}
    seen: dict[int, dict[str, tuple]] = {o: {} for o in known}
    stale: set[int] = set()
    my_ids = {keys_of(c)[0] for c in mine}
    my_places = set().union(*(keys_of(c)[1] for c in mine)) if mine else set()
    root = definitions_dir.parent
    out: dict[Path, Claim] = {}
    for listed, other in paths:
        key, stamp = listed.key, listed.stamp
        entry = known[other].get(key)
        claim = None
        if entry is not None and entry[0] == stamp:
            keys = entry[1]
        else:  # new, changed, or its share's index is not written yet
            claim = _claim_or_none(listed.path, root, shared)
            keys = keys_or_none(claim)
            stale.add(other)
        seen[other][key] = (stamp, keys)
        if keys is None or (keys[0] not in my_ids and not keys[1] & my_places):
            continue
        claim = claim or _claim_or_none(listed.path, root, shared)
        if claim is not None:
            out[listed.path] = claim
    for other in stale:
        write_share(definitions_dir, other, count, seen[other])
    return out


def _claim_or_none(path: Path, root: Path, shared: Folders) -> Claim | None:
    try:
        return claim_of(relative_name(path, root), load_in_place(path, shared))
    except DefinitionError:
        return None


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def find_definition(definitions_dir: Path, dag_id: str) -> tuple[Path, Pipeline] | None:
    """The valid definition of ``dag_id``: by file name first (the usual case), else by a text search, so the
    other files are not even loaded."""
    named = definitions_dir / f"{dag_id}.json"
    candidates = [named] if named.is_file() else []
    needle = json.dumps(dag_id).encode()
    if not candidates:
        candidates = [p for p in definition_files(definitions_dir) if needle in _read(p)]
    shared = shared_folders()
    for path in candidates:
        try:
            pipeline = load_in_place(path, shared)
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


def relative_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is under it, else as given."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def relabel(error: DefinitionError, path: Path, root: Path) -> DefinitionError:
    """Name files relative to the dags folder: the same text in the UI, the CLI and every container."""
    rel = relative_name(path, root)
    return DefinitionError(Problem(rel, p.path, p.message, p.fix) for p in error.problems)


def load_cached(definition: str) -> Pipeline:
    """The definition a task runs or alerts for, loaded once per version of the file in this process."""
    return _load_version(definition, Path(definition).stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _load_version(definition: str, mtime_ns: int) -> Pipeline:
    return load_definition(definition)
