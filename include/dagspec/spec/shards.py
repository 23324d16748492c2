"""Definitions split across several loader files, and what each loader knows of the others' definitions.

Airflow gives every DAG file its own parse timeout (30 s) and parses files in parallel, so one
loader holding 20,000 definitions times out and loses every DAG, while K loader files each build
the share whose file name hashes to them. Rules that span the folder (one dag_id per definition,
one owner per output) still need every definition's dag_id and outputs: each loader writes a small
index of its own share (file name, stat stamp, the dag_id's key and the places it writes) and reads
the others', so a warm parse reads N small index entries and validates only its own N/K files; an
other share's definition is read in full only when it meets one of this share's on a key. A file another share's
index does not describe as it is now (new, changed, or that index not written yet) is validated on
the spot, so a stale index can cost time but never a wrong answer.

The index is JSON, never pickle: it may sit in a folder other processes can write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zlib
from pathlib import Path

from dagspec.spec.folder import Claim, keys_of

Keys = tuple[str, frozenset[tuple[str, ...]]]  # a valid definition's id key and the places it writes

log = logging.getLogger(__name__)
INDEX_VERSION = 2


def shard_of(file_name: str, count: int) -> int:
    """The loader (0..count-1) that builds a definition: a stable hash of its file name, not Python's hash()."""
    return zlib.crc32(file_name.encode("utf-8", "surrogateescape")) % count if count > 1 else 0


def index_dir(definitions_dir: Path) -> Path:
    """Where a folder's share indexes live: $DAGSPEC_CACHE, else the system temp folder (DAG folders from git
    bundles are read-only), one subfolder per definitions folder."""
    root = Path(os.environ.get("DAGSPEC_CACHE") or Path(tempfile.gettempdir()) / "dagspec-cache")
    key = hashlib.sha1(str(definitions_dir.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return root / f"definitions-{key}"


def read_share(definitions_dir: Path, shard: int, count: int) -> dict[str, tuple[tuple[int, ...], Keys | None]]:
    """Another loader's index: file name -> (stamp, keys, or None for an invalid file)."""
    path = index_dir(definitions_dir) / f"share-{shard}-of-{count}.json"
    try:
        data = json.loads(path.read_bytes())
        if data.get("version") != INDEX_VERSION:
            return {}
        # map(tuple, ...) rather than a generator: this runs for every file of every other share, each parse.
        return {name: (tuple(e["t"]), (e["k"], frozenset(map(tuple, e["p"]))) if "k" in e else None)
                for name, e in data["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}  # absent, torn or foreign: the files it would describe get validated instead


def keys_or_none(claim: Claim | None) -> Keys | None:
    return keys_of(claim) if claim is not None else None


def write_share(definitions_dir: Path, shard: int, count: int,
                entries: dict[str, tuple[tuple[int, ...] | None, Keys | None]]) -> None:
    """Write a share's index: file name -> (stamp, keys, or None for an invalid file). Any loader that has read
    a share's files may write it (the stamps say what each entry describes), not only the share's own loader."""
    folder = index_dir(definitions_dir)
    body = {"version": INDEX_VERSION, "files": {
        name: {"t": list(stamp), **({"k": keys[0], "p": [list(p) for p in keys[1]]} if keys else {})}
        for name, (stamp, keys) in entries.items() if stamp is not None}}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".share-{shard}-of-{count}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(body, separators=(",", ":")))
        os.replace(tmp, folder / f"share-{shard}-of-{count}.json")
    except OSError as exc:  # no writable cache: every loader validates every file, slower but right
        log.warning("dagspec: cannot write the definitions index in %s: %s", folder, exc)
