"""Remote bundles: ``<prefix>/<bundle>/`` (definitions with their own sql/ and expectations/) brought in whole.

A bundle is fetched into a hidden folder of its own (``.bundles/<name>-<digest>``), every definition of it
validated against its own SQL and suites (SQL rendered and parsed in the warehouse's dialect) and against
the live folder, and only then made live by replacing the symlink ``<bundle>`` in one rename: the
dag-processor sees the old bundle or the new one, never half of either, and a bad bundle never replaces a
good one. A folder of that name that this sync did not make is never touched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from dagspec.spec.bundles import BUNDLE_NAME, NOT_BUNDLES, Folders, folders_of
from dagspec.spec.errors import DefinitionError, Problem
from dagspec.spec.folder import Claim, claim_of, folder_problems, id_key
from dagspec.spec.jsontext import MAX_BYTES
from dagspec.spec.load import parse_definition
from dagspec.sync_parts import Owners, Remote, SyncReport, dag_id_clash

if TYPE_CHECKING:
    import pyarrow.fs as pafs

log = logging.getLogger("dagspec.sync")
VERSIONS = ".bundles"  # every bundle version this sync made; the live one is what <bundle> links to
MAX_FILES, MAX_TOTAL = 500, 20 * MAX_BYTES
PART = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$"


@dataclass
class BundlePass:
    """One sync pass's view of the folder, shared with the single-file drops."""

    fs: pafs.FileSystem
    uri: str
    target: Path
    state: dict[str, dict]
    report: SyncReport
    live_ids: dict[str, tuple[str, str]]
    owners: Owners
    shared: Folders


def state_key(bundle: str) -> str:
    return bundle + "/"  # a file name never ends in '/': bundles and files share the state file


def is_bundle_key(key: str) -> bool:
    return key.endswith("/")


def sync_bundles(run: BundlePass, remote: dict[str, dict[str, Remote]]) -> None:
    """Bring in new and changed bundles, remove those deleted remotely (only ones this sync made)."""
    for bundle, files in sorted(remote.items()):
        shown = f"{run.target.name}/{bundle}/"
        try:
            _one(run, bundle, files, shown)
        except Exception as exc:  # one unreadable bundle must not stop the others' sync
            log.exception("dagspec sync: cannot bring in %s", shown)
            run.report.rejected[state_key(bundle)] = [Problem(shown, "$", f"cannot fetch it: {type(exc).__name__}: "
                                                              f"{exc}"[:300], "the next sync tries again")]
    for key in sorted(k for k in run.state if is_bundle_key(k) and k[:-1] not in remote):
        _remove(run, key[:-1])


def _one(run: BundlePass, bundle: str, files: dict[str, Remote], shown: str) -> None:
    key, live = state_key(bundle), run.target / bundle
    version = hashlib.sha256("\n".join(f"{n}\t{r.version}" for n, r in sorted(files.items())).encode()).hexdigest()
    known = run.state.get(key)
    if known and known.get("version") == version and live.is_symlink() and live.exists():
        run.report.unchanged.append(key)
        return
    problems = _shape_problems(bundle, files, shown)
    if not problems and (live.exists() or live.is_symlink()) and not _made_here(run.target, live):
        problems = [Problem(shown, "$", f"a folder {bundle!r} that this sync did not bring in is there",
                            "rename the bundle, or remove the local folder (sync never replaces what it did not make)")]
    if problems:
        _reject(run, key, problems)
        return
    staging = run.target / VERSIONS / f".{bundle}.{os.getpid()}.incoming"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        digest = _fetch(run.fs, files, staging)
        checked, problems = _check(run, bundle, staging, shown)
        if problems:
            _reject(run, key, problems)
            return
        home = run.target / VERSIONS / f"{bundle}-{digest[:16]}"
        if not home.exists():
            os.replace(staging, home)
        previous = live.resolve() if live.is_symlink() else None
        link = run.target / f".{bundle}.{os.getpid()}.link"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(VERSIONS) / home.name)
        os.replace(link, live)  # the one step that makes it live: atomic
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if previous is not None and previous != home.resolve():
        shutil.rmtree(previous, ignore_errors=True)
    (run.report.updated if known else run.report.added).append(key)
    run.owners.drop(key)
    for name, claim, dag_id in checked:
        run.live_ids[id_key(dag_id)] = (dag_id, f"{bundle}/{name}")
        run.owners.take(f"{bundle}/{name}", claim)
    run.state[key] = {"version": version, "sha256": digest, "source": run.uri.rstrip("/") + "/" + key}


def _shape_problems(bundle: str, files: dict[str, Remote], shown: str) -> list[Problem]:
    if not BUNDLE_NAME.match(bundle) or bundle in NOT_BUNDLES:
        return [Problem(shown, "$", f"{bundle!r} is not a usable bundle name",
                        "name it with letters, digits, '_', '.', '-' (not 'sql', 'expectations' or 'tests')")]
    bad = [n for n in files if any(not re.match(PART, part) for part in PurePosixPath(n).parts)]
    if bad:
        return [Problem(shown, "$", f"{len(bad)} file name(s) this sync cannot bring in, e.g. {sorted(bad)[0]!r}",
                        "use letters, digits, '_', '.', '-' in every file and folder name")]
    if len(files) > MAX_FILES or sum(r.size for r in files.values()) > MAX_TOTAL:
        return [Problem(shown, "$", f"{len(files)} files, {sum(r.size for r in files.values()):,} bytes: a bundle is "
                        f"at most {MAX_FILES} files and {MAX_TOTAL:,} bytes", "check that the right folder was dropped")]
    if not any("/" not in n and n.endswith(".json") for n in files):
        return [Problem(shown, "$", "the bundle holds no definition (*.json at its top)",
                        "put the definition beside its sql/ and expectations/ folders")]
    return []


def _fetch(fs: pafs.FileSystem, files: dict[str, Remote], staging: Path) -> str:
    """Every file into ``staging``; a digest of what was written (names and bytes)."""
    digest = hashlib.sha256()
    for name, obj in sorted(files.items()):
        with fs.open_input_stream(obj.path) as f:
            raw = f.read(MAX_TOTAL + 1)
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        digest.update(f"{name}\0{len(raw)}\0".encode() + raw)
    return digest.hexdigest()


def _check(run: BundlePass, bundle: str, staging: Path, shown: str) -> tuple[list[tuple[str, Claim, str]], list[Problem]]:
    """Each definition's (file name, claim, dag_id), and every problem that keeps the bundle out."""
    problems: list[Problem] = []
    fit = []
    live = run.target / bundle
    mine = {f"{bundle}/{p.name}" for p in live.glob("*.json")} if live.is_dir() else set()
    for path in sorted(staging.glob("*.json")):
        label = f"{shown}{path.name}"
        own = folders_of(path, run.shared)
        try:
            pipeline = parse_definition(path.read_bytes(), label, sql_dir=own.sql, suite_dir=own.suites, check_sql=True)
        except DefinitionError as exc:
            problems += exc.problems
            continue
        claim = claim_of(label, pipeline)
        problems += dag_id_clash(label, pipeline, run.live_ids, run.target, mine) or \
            run.owners.clashes(claim, replacing=mine)
        fit.append((path.name, claim, pipeline.dag_id))
    # Between the bundle's own definitions too: one dag_id or one table twice.
    for found in folder_problems([c for _, c, _ in fit], verdict="this bundle is not brought in").values():
        problems += found
    return fit, problems


def _reject(run: BundlePass, key: str, problems: list[Problem]) -> None:
    run.report.rejected[key] = problems
    for p in problems:
        log.error("dagspec sync: %s rejected: %s", run.uri.rstrip("/") + "/" + key, p)


def _made_here(target: Path, live: Path) -> bool:
    """A symlink into this sync's versions folder (anything else there is someone's own)."""
    if not live.is_symlink():
        return False
    return Path(os.readlink(live)).parts[:1] == (VERSIONS,)


def _remove(run: BundlePass, bundle: str) -> None:
    live, key = run.target / bundle, state_key(bundle)
    if _made_here(run.target, live):
        home = live.resolve()
        live.unlink()
        shutil.rmtree(home, ignore_errors=True)
        run.report.deleted.append(key)
    run.owners.drop(key)
    del run.state[key]
