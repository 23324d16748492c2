"""Remote drops: bring definitions from an S3 or GCS prefix into the local definitions folder.

Only new or changed objects are downloaded. Each is validated (alone, and against the dag_ids of
the folder) before it goes live; an invalid one never replaces what is there, good or absent. A
definition deleted remotely is deleted locally, but only one this sync brought in: local-only
files (the shipped examples, hand-made ones) are never touched. What came from where is kept in
`.dagspec-sync.state` beside the definitions.

Files are swapped in with an atomic rename, so the dag-processor never reads half a file. A
sub-folder of the prefix is a bundle (a definition with its own sql/ and expectations/): it comes in
whole or not at all (sync_bundles.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.paths import expectations_dir
from dagspec.paths import sql_dir as shared_sql_dir
from dagspec.spec.bundles import Folders
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.folder import claim_of, id_key
from dagspec.spec.jsontext import MAX_BYTES
from dagspec.spec.load import parse_definition
from dagspec.sync_bundles import BundlePass, is_bundle_key, sync_bundles
from dagspec.sync_parts import (
    STATE_FILE,
    Owners,
    Remote,
    SyncReport,
    dag_id_clash,
    load_state,
    local_dag_ids,
    save_state,
    sha256_of,
    write_atomic,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger("dagspec.sync")
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.json$")
__all__ = ["STATE_FILE", "SyncReport", "sync"]


def sync(uri: str, conn_id: str, target: Path, *, resolver: Callable[[str], ConnectionInfo] = env_resolver,
         sql_dir: Path | None = None) -> SyncReport:
    """One pass: list the prefix, fetch what changed, validate, swap in, remove what was deleted."""
    from dagspec.filesystems import check_scheme, filesystem, split_uri

    scheme, prefix = split_uri(uri)
    info = resolver(conn_id)
    check_scheme(info, scheme, uri)
    fs = filesystem(info)
    remote, bundles = _list(fs, prefix)  # raises on a failed listing: never read an error as "all was deleted"
    target.mkdir(parents=True, exist_ok=True)
    state = load_state(target)
    report = SyncReport()
    shared = Folders(sql_dir or shared_sql_dir(), expectations_dir())
    files = {name for name in state if not is_bundle_key(name)}
    # Drops deleted remotely go in this pass: their dag_ids are free for a renamed definition now.
    gone = {name for name in files - set(remote) if not _edited_locally(target / name, state[name])}
    gone |= {key for key in state if is_bundle_key(key) and key[:-1] not in bundles}
    live_ids = local_dag_ids(target, exclude=gone)
    owners = Owners(target, gone, shared)

    for name, obj in sorted(remote.items()):
        known = state.get(name)
        local = target / name
        if known and known.get("version") == obj.version and local.exists():
            report.unchanged.append(name)
            continue
        try:
            problems = _fetch_and_check(fs, obj, target, live_ids, shared, owners)
        except Exception as exc:  # one unreadable object must not stop the others' sync
            log.exception("dagspec sync: cannot fetch %s", obj.path)
            problems = [Problem(f"{target.name}/{obj.name}", "$", f"cannot fetch it: {type(exc).__name__}: {exc}"[:300],
                                "check the object and the connection; the next sync tries again")]
        if isinstance(problems, list):
            report.rejected[name] = problems
            for p in problems:
                log.error("dagspec sync: %s rejected: %s", uri.rstrip("/") + "/" + name, p)
            continue
        raw, dag_id = problems
        digest = hashlib.sha256(raw).hexdigest()
        if local.exists() and sha256_of(local) == digest:
            report.unchanged.append(name)
        else:
            (report.updated if local.exists() else report.added).append(name)
            write_atomic(local, raw)
        live_ids[id_key(dag_id)] = (dag_id, name)
        state[name] = {"version": obj.version, "sha256": digest, "source": uri.rstrip("/") + "/" + name}

    for name in sorted(files - set(remote)):
        path = target / name
        if name not in gone:
            log.warning("dagspec sync: %s was deleted remotely but edited locally; kept", name)
        else:
            path.unlink(missing_ok=True)
            report.deleted.append(name)
        del state[name]
    sync_bundles(BundlePass(fs, uri, target, state, report, live_ids, owners, shared), bundles)
    save_state(target, state)
    log.info("dagspec sync from %s: %s", uri, report.summary())
    return report


def _list(fs: pafs.FileSystem, prefix: str) -> tuple[dict[str, Remote], dict[str, dict[str, Remote]]]:
    """The prefix's definitions (direct children) and its bundles (sub-folders: name -> path inside -> object)."""
    import pyarrow.fs as pafs

    # Recursive listing: the GCS emulator has no delimiter listing.
    infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    files: dict[str, Remote] = {}
    bundles: dict[str, dict[str, Remote]] = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rest = info.path[len(prefix):].lstrip("/") if info.path.startswith(prefix) else info.path
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        if "/" in rest:
            bundle, inside = rest.split("/", 1)
            bundles.setdefault(bundle, {})[inside] = Remote(inside, info.path, f"{info.size}:{mtime}", info.size or 0)
        elif rest.endswith(".json"):
            files[rest] = Remote(rest, info.path, f"{info.size}:{mtime}", info.size or 0)
    return files, bundles


def _fetch_and_check(fs: pafs.FileSystem, obj: Remote, target: Path, live_ids: dict[str, tuple[str, str]],
                     shared: Folders, owners: Owners) -> list[Problem] | tuple[bytes, str]:
    """(raw bytes, dag_id) for a definition fit to go live, or the problems that keep it out."""
    shown = f"{target.name}/{obj.name}"
    if not NAME.match(obj.name):
        return [Problem(shown, "$", f"{obj.name!r} is not a usable definition file name",
                        "name it with letters, digits, '_', '.', '-' and end it in .json")]
    if obj.size > MAX_BYTES:
        return [Problem(shown, "$", f"file is {obj.size:,} bytes; a definition is at most {MAX_BYTES:,}",
                        "split it, or check that the right file was dropped")]
    with fs.open_input_stream(obj.path) as f:
        raw = f.read(MAX_BYTES + 1)
    try:
        pipeline = parse_definition(raw, shown, sql_dir=shared.sql, suite_dir=shared.suites, check_sql=True)
    except DefinitionError as exc:
        return exc.problems
    clash = dag_id_clash(shown, pipeline, live_ids, target, {obj.name})
    if clash:
        return clash
    claim = claim_of(shown, pipeline)
    clashes = owners.clashes(claim, replacing={obj.name})
    if clashes:
        return clashes
    owners.take(obj.name, claim)
    return raw, pipeline.dag_id


def _edited_locally(path: Path, known: dict) -> bool:
    return path.exists() and sha256_of(path) != known.get("sha256")
