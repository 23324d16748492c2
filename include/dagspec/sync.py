"""Remote drops: bring definitions from an S3 or GCS prefix into the local definitions folder.

Only new or changed objects are downloaded. Each is validated (alone, and against the dag_ids of
the folder) before it goes live; an invalid one never replaces what is there, good or absent. A
definition deleted remotely is deleted locally, but only one this sync brought in: local-only
files (the shipped examples, hand-made ones) are never touched. What came from where is kept in
`.dagspec-sync.state` beside the definitions.

Files are swapped in with an atomic rename, so the dag-processor never reads half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.folder import Claim, claim_of, folder_problems, id_key
from dagspec.spec.jsontext import MAX_BYTES, decode_definition, read_definition
from dagspec.spec.load import parse_definition

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger("dagspec.sync")
STATE_FILE = ".dagspec-sync.state"  # not *.json: never read as a definition
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.json$")


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    rejected: dict[str, list[Problem]] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.deleted)} deleted, "
                f"{len(self.unchanged)} unchanged, {len(self.rejected)} rejected")


@dataclass(frozen=True)
class Remote:
    name: str  # file name in the folder
    path: str  # bucket/key for the file system
    version: str  # size and mtime: changes when the object does (S3 and GCS both give both)
    size: int


def sync(uri: str, conn_id: str, target: Path, *, resolver: Callable[[str], ConnectionInfo] = env_resolver,
         sql_dir: Path | None = None) -> SyncReport:
    """One pass: list the prefix, fetch what changed, validate, swap in, remove what was deleted."""
    from dagspec.filesystems import check_scheme, filesystem, split_uri

    scheme, prefix = split_uri(uri)
    info = resolver(conn_id)
    check_scheme(info, scheme, uri)
    fs = filesystem(info)
    remote = _list(fs, prefix)  # raises on a failed listing: never read an error as "everything was deleted"
    target.mkdir(parents=True, exist_ok=True)
    state = _load_state(target)
    report = SyncReport()
    # Files deleted remotely go in this pass: their dag_ids are free for a renamed definition now.
    gone = {name for name in set(state) - set(remote) if not _edited_locally(target / name, state[name])}
    live_ids = _local_dag_ids(target, exclude=gone)
    owners = _Owners(target, gone, sql_dir)

    for name, obj in sorted(remote.items()):
        known = state.get(name)
        local = target / name
        if known and known.get("version") == obj.version and local.exists():
            report.unchanged.append(name)
            continue
        try:
            problems = _fetch_and_check(fs, obj, target, live_ids, sql_dir, owners)
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
        if local.exists() and _sha256(local) == digest:
            report.unchanged.append(name)
        else:
            (report.updated if local.exists() else report.added).append(name)
            _write_atomic(local, raw)
        live_ids[id_key(dag_id)] = (dag_id, name)
        state[name] = {"version": obj.version, "sha256": digest, "source": uri.rstrip("/") + "/" + name}

    for name in sorted(set(state) - set(remote)):
        path = target / name
        if name not in gone:
            log.warning("dagspec sync: %s was deleted remotely but edited locally; kept", name)
        else:
            path.unlink(missing_ok=True)
            report.deleted.append(name)
        del state[name]
    _save_state(target, state)
    log.info("dagspec sync from %s: %s", uri, report.summary())
    return report


def _list(fs: pafs.FileSystem, prefix: str) -> dict[str, Remote]:
    import pyarrow.fs as pafs

    # Recursive listing filtered to direct children: the GCS emulator has no delimiter listing,
    # and definitions in sub-"folders" are not part of this prefix's drop.
    infos = fs.get_file_info(pafs.FileSelector(prefix, recursive=True, allow_not_found=True))
    out: dict[str, Remote] = {}
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rest = info.path[len(prefix):].lstrip("/") if info.path.startswith(prefix) else info.path
        if "/" in rest or not rest.endswith(".json"):
            continue
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        out[rest] = Remote(rest, info.path, f"{info.size}:{mtime}", info.size or 0)
    return out


class _Owners:
    """Who writes what among the live definitions, read only once a drop needs checking (a full parse of
    the folder), so a drop that stages into another definition's table is refused before it goes live:
    in the folder, the loader would refuse both, and the live one would vanish too."""

    def __init__(self, target: Path, exclude: set[str], sql_dir: Path | None) -> None:
        self.target, self.exclude, self.sql_dir = target, exclude, sql_dir
        self._claims: dict[str, Claim] | None = None

    def claims(self) -> dict[str, Claim]:
        if self._claims is None:
            self._claims = {}
            for path in sorted(self.target.glob("*.json")):
                if path.name in self.exclude or path.name.startswith("."):
                    continue
                try:
                    shown = f"{self.target.name}/{path.name}"
                    pipeline = parse_definition(read_definition(path, shown), shown, sql_dir=self.sql_dir)
                except DefinitionError:
                    continue
                self._claims[path.name] = claim_of(f"{self.target.name}/{path.name}", pipeline)
        return self._claims

    def clashes(self, name: str, claim: Claim) -> list[Problem]:
        others = [c for n, c in self.claims().items() if n != name]
        found = folder_problems([claim, *others], verdict="this drop is not brought in").get(claim.file, [])
        return [p for p in found if p.path != "$.dag_id"]  # dag_ids: checked by the caller, live ids included

    def take(self, name: str, claim: Claim) -> None:
        self.claims()[name] = claim


def _fetch_and_check(fs: pafs.FileSystem, obj: Remote, target: Path, live_ids: dict[str, tuple[str, str]], sql_dir: Path | None,
                     owners: _Owners) -> list[Problem]:
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
        pipeline = parse_definition(raw, shown, sql_dir=sql_dir, check_sql=True)
    except DefinitionError as exc:
        return exc.problems
    dag_id, owner = live_ids.get(id_key(pipeline.dag_id), (None, None))
    if owner is not None and owner != obj.name:
        if dag_id == pipeline.dag_id:
            return [Problem(shown, "$.dag_id", f"dag_id {pipeline.dag_id!r} is already used by {target.name}/{owner}",
                            "give each definition its own dag_id")]
        return [Problem(shown, "$.dag_id", f"dag_id {pipeline.dag_id!r} differs from {dag_id!r} in "
                        f"{target.name}/{owner} only by case or '-', '_', '.': they would share warehouse tables",
                        "give each definition a dag_id that differs in letters or digits")]
    claim = claim_of(shown, pipeline)
    clashes = owners.clashes(obj.name, claim)
    if clashes:
        return clashes
    owners.take(obj.name, claim)
    return raw, pipeline.dag_id


def _local_dag_ids(target: Path, exclude: set[str]) -> dict[str, tuple[str, str]]:
    """id_key(dag_id) -> (dag_id, file name) for the folder's definitions (a cheap read: JSON, no model)."""
    ids: dict[str, tuple[str, str]] = {}
    for path in sorted(target.glob("*.json")):
        if path.name in exclude:
            continue
        try:
            data, _ = decode_definition(read_definition(path, path.name), path.name)
        except DefinitionError:
            continue
        if isinstance(data.get("dag_id"), str):
            ids.setdefault(id_key(data["dag_id"]), (data["dag_id"], path.name))
    return ids


def _edited_locally(path: Path, known: dict) -> bool:
    return path.exists() and _sha256(path) != known.get("sha256")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomic(path: Path, raw: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not *.json: the loader never sees it
    tmp.write_bytes(raw)
    os.replace(tmp, path)


def _load_state(target: Path) -> dict[str, dict]:
    try:
        data = json.loads((target / STATE_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_state(target: Path, state: dict[str, dict]) -> None:
    _write_atomic(target / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())
