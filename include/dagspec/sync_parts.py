"""What both kinds of remote drop share (sync.py: single files, sync_bundles.py: bundles): the report, the
listing's entries, who owns what among the live definitions, the state file and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dagspec.spec.bundles import Folders, key_of
from dagspec.spec.discovery import definition_files, load_in_place
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.folder import Claim, claim_of, folder_problems, id_key
from dagspec.spec.jsontext import decode_definition, read_definition
from dagspec.spec.model import Pipeline

STATE_FILE = ".dagspec-sync.state"  # not *.json: never read as a definition


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
    name: str  # file name in the folder (in a bundle: its path inside the bundle)
    path: str  # bucket/key for the file system
    version: str  # size and mtime: changes when the object does (S3 and GCS both give both)
    size: int


class Owners:
    """Who writes what among the live definitions, read only once a drop needs checking (a full parse of
    the folder), so a drop that stages into another definition's table is refused before it goes live:
    in the folder, the loader would refuse both, and the live one would vanish too. Keys are names in the
    folder (``file.json``, ``bundle/file.json``)."""

    def __init__(self, target: Path, exclude: set[str], shared: Folders) -> None:
        self.target, self.exclude, self.shared = target, exclude, shared
        self._claims: dict[str, Claim] | None = None

    def claims(self) -> dict[str, Claim]:
        if self._claims is None:
            self._claims = {}
            for path in definition_files(self.target):
                key = key_of(path, self.target)
                if key in self.exclude or key.split("/")[0] + "/" in self.exclude:  # a file, or a whole bundle, gone
                    continue
                try:
                    pipeline = load_in_place(path, self.shared)
                except DefinitionError:
                    continue
                self._claims[key] = claim_of(f"{self.target.name}/{key}", pipeline)
        return self._claims

    def clashes(self, claim: Claim, *, replacing: set[str]) -> list[Problem]:
        """The problems that keep ``claim`` out, against every live claim but those it replaces."""
        others = [c for n, c in self.claims().items() if n not in replacing]
        found = folder_problems([claim, *others], verdict="this drop is not brought in").get(claim.file, [])
        return [p for p in found if p.path != "$.dag_id"]  # dag_ids: checked by dag_id_clash, live ids included

    def take(self, key: str, claim: Claim) -> None:
        self.claims()[key] = claim

    def drop(self, prefix: str) -> None:
        for key in [k for k in self.claims() if k.startswith(prefix)]:
            del self.claims()[key]


def dag_id_clash(shown: str, pipeline: Pipeline, live_ids: dict[str, tuple[str, str]], target: Path,
                 mine: set[str]) -> list[Problem]:
    """A live definition (other than ``mine``, the names this drop replaces) whose dag_id is the same or shares
    its key (case, '-', '_', '.')."""
    dag_id, owner = live_ids.get(id_key(pipeline.dag_id), (None, None))
    if owner is None or owner in mine:
        return []
    if dag_id == pipeline.dag_id:
        return [Problem(shown, "$.dag_id", f"dag_id {pipeline.dag_id!r} is already used by {target.name}/{owner}",
                        "give each definition its own dag_id")]
    return [Problem(shown, "$.dag_id", f"dag_id {pipeline.dag_id!r} differs from {dag_id!r} in "
                    f"{target.name}/{owner} only by case or '-', '_', '.': they would share warehouse tables",
                    "give each definition a dag_id that differs in letters or digits")]


def local_dag_ids(target: Path, exclude: set[str]) -> dict[str, tuple[str, str]]:
    """id_key(dag_id) -> (dag_id, name in the folder) for its definitions (a cheap read: JSON, no model)."""
    ids: dict[str, tuple[str, str]] = {}
    for path in definition_files(target):
        key = key_of(path, target)
        if key in exclude or key.split("/")[0] + "/" in exclude:
            continue
        try:
            data, _ = decode_definition(read_definition(path, key), key)
        except DefinitionError:
            continue
        if isinstance(data.get("dag_id"), str):
            ids.setdefault(id_key(data["dag_id"]), (data["dag_id"], key))
    return ids


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_atomic(path: Path, raw: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not *.json: the loader never sees it
    tmp.write_bytes(raw)
    os.replace(tmp, path)


def load_state(target: Path) -> dict[str, dict]:
    try:
        data = json.loads((target / STATE_FILE).read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def save_state(target: Path, state: dict[str, dict]) -> None:
    write_atomic(target / STATE_FILE, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())
