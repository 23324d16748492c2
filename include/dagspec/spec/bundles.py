"""Bundles: a folder inside the definitions folder that holds definitions with their own SQL and suites.

An analyst drops ``definitions/<bundle>/`` holding one or more ``*.json`` with ``sql/`` and
``expectations/`` beside them, without an engineer deploying files into the shared folders. A
definition's SQL and suite files are looked up in the ``sql/`` and ``expectations/`` beside it when
that folder exists, else in the shared folders: the rule needs only the definition's path, so the
dag-processor, a worker and the CLI all resolve the same files. A bundle is one unit: it lives in
one loader share, its SQL is always rendered and parsed, and one bad file refuses all of it (a DAG
built from half a bundle would run SQL its author never checked beside it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from dagspec.spec.errors import DefinitionError, Problem

SQL_FOLDER, SUITES_FOLDER, TESTS_FOLDER = "sql", "expectations", "tests"
# Not bundles: a definitions folder may keep its own sql/, expectations/ and transform tests beside its definitions.
NOT_BUNDLES = frozenset({SQL_FOLDER, SUITES_FOLDER, TESTS_FOLDER})
BUNDLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}$")  # what the sync brings in (sync_bundles.py)


@dataclass(frozen=True)
class Folders:
    """Where one definition's SQL files and GX suites are."""

    sql: Path
    suites: Path


def folders_of(definition: Path, shared: Folders) -> Folders:
    """The ``sql/`` and ``expectations/`` beside the definition where they exist, else the shared ones."""
    here = definition.parent
    return Folders(here / SQL_FOLDER if (here / SQL_FOLDER).is_dir() else shared.sql,
                   here / SUITES_FOLDER if (here / SUITES_FOLDER).is_dir() else shared.suites)


Stamp = tuple[int, int, int, int]  # what says a file is still the one an index described (spec/shards.py)


def stamp_of_stat(st: os.stat_result) -> Stamp:
    """ctime and the inode change with every write and copy, even one that keeps the mtime (cp -p, rsync -t, a
    git checkout of the same second)."""
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size


class Listed(NamedTuple):
    folder: Path  # the definitions folder, or the bundle's folder in it
    name: str  # the file's name
    key: str  # ``file.json`` or ``bundle/file.json``: key_of(path)
    unit: str  # what picks the loader share: unit_name(path)
    stamp: Stamp | None  # from the directory read; None when the file went away meanwhile

    @property
    def path(self) -> Path:
        # Made on use: every loader share lists the whole folder, and most entries are only stamped, never read.
        return self.folder / self.name


def listing(definitions_dir: Path) -> list[Listed]:
    """The folder's ``*.json``, then each bundle's (``<bundle>/*.json``, one level down), hidden files and folders
    left out (``.name`` is how a drop is copied in before a rename makes it live), and so are ``_name`` folders
    (the loader's own) and sql/, expectations/, tests/. Whatever a bundle's name holds, its definitions get errors of
    their own: a name is never code (error_stubs.py), only text. One directory read per
    folder and names as strings: every loader share lists the whole folder at every parse."""
    files, folders = _entries(definitions_dir)
    found = [Listed(definitions_dir, name, name, name, stamp) for name, stamp in files]
    for folder in folders:
        if folder.startswith((".", "_")) or folder in NOT_BUNDLES:
            continue
        inside, _ = _entries(definitions_dir / folder)
        found += [Listed(definitions_dir / folder, name, f"{folder}/{name}", folder, stamp) for name, stamp in inside]
    return found


def _entries(folder: Path) -> tuple[list[tuple[str, Stamp | None]], list[str]]:
    """(sorted visible *.json file names with their stamps, sorted sub-folder names) of one folder; nothing when it
    is not there."""
    files, folders = [], []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir():
                    folders.append(entry.name)
                elif entry.name.endswith(".json") and not entry.name.startswith("."):
                    files.append((entry.name, _stamp(entry)))  # a pipe or a socket too: read_definition says what
    except OSError:
        return [], []
    return sorted(files), sorted(folders)


def _stamp(entry: os.DirEntry) -> Stamp | None:
    try:
        return stamp_of_stat(entry.stat())
    except OSError:
        return None


def bundle_of(path: Path, definitions_dir: Path) -> str | None:
    """The bundle a definition belongs to, or None for one directly in the definitions folder."""
    return path.parent.name if path.parent != definitions_dir else None


def unit_name(path: Path, definitions_dir: Path) -> str:
    """What a loader share is chosen by: a bundle's name (all of it in one share), else the file name."""
    return bundle_of(path, definitions_dir) or path.name


def key_of(path: Path, definitions_dir: Path) -> str:
    """A definition's name within the folder: ``file.json`` or ``bundle/file.json``."""
    bundle = bundle_of(path, definitions_dir)
    return f"{bundle}/{path.name}" if bundle else path.name


def refuse_whole_bundles(definitions_dir: Path, paths: Iterable[Path], bad: dict[Path, DefinitionError],
                         shown: Callable[[Path], str]) -> None:
    """Add an error to every definition of a bundle in which some definition has errors (in place)."""
    broken: dict[str, list[str]] = {}
    for path in bad:
        bundle = bundle_of(path, definitions_dir)
        if bundle is not None:
            broken.setdefault(bundle, []).append(path.name)
    for path in paths:
        bundle = bundle_of(path, definitions_dir)
        if bundle in broken and path not in bad:
            others = ", ".join(sorted(broken[bundle]))
            bad[path] = DefinitionError([Problem(shown(path), "$",
                                                 f"bundle {bundle!r} is refused as a whole: {others} has errors",
                                                 "fix the bundle's other definitions; a bundle goes live whole")])
