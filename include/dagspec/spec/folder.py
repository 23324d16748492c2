"""Rules across the definitions of one folder: each dag_id, and each place data is written, has one owner.

A pair that breaks a rule is refused whole (both files named, neither loaded): loading either one
would pick a winner by file order, and the loser's data or DAG would change under its owner.
Used by the loader's folder scan and by `dagspec validate`, so both say the same.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagspec.spec.errors import Problem
from dagspec.spec.outputs import Output, writes

if TYPE_CHECKING:
    from dagspec.spec.model import Pipeline


@dataclass(frozen=True)
class Claim:
    """What one valid definition takes from the folder: small, so a scan need not keep Pipelines."""

    file: str
    dag_id: str
    writes: tuple[Output, ...]


def claim_of(file: str, pipeline: Pipeline) -> Claim:
    return Claim(file, pipeline.dag_id, tuple(writes(pipeline)))


def keys_of(claim: Claim) -> tuple[str, frozenset[tuple[str, ...]]]:
    """What two claims must share for a rule to join them: the dag_id's key, or a place written."""
    return id_key(claim.dag_id), frozenset(o.place for o in claim.writes)


def id_key(dag_id: str) -> str:
    """The part of a dag_id its tables and Asset URIs keep: case, '-' and '.' are lost on the way."""
    return re.sub(r"[^a-z0-9_]", "_", dag_id.lower())


def folder_problems(claims: Iterable[Claim], *, verdict: str | None = None) -> dict[str, list[Problem]]:
    """file -> the cross-definition problems that keep it out (files without any are absent).
    ``verdict`` replaces "neither is loaded" where the caller decides otherwise (the sync keeps the live one)."""
    claims = list(claims)
    found: dict[str, list[Problem]] = defaultdict(list)
    by_key: dict[str, list[Claim]] = defaultdict(list)
    for c in claims:
        by_key[id_key(c.dag_id)].append(c)
    refused_pairs: set[frozenset[str]] = set()
    for group in by_key.values():
        for c in group:
            others = [o for o in group if o is not c]
            if not others:
                continue
            refused_pairs.update(frozenset((c.file, o.file)) for o in others)
            if all(o.dag_id == c.dag_id for o in others):
                names = ", ".join(o.file for o in others)
                found[c.file].append(Problem(c.file, "$.dag_id", f"dag_id {c.dag_id!r} is also used by {names}; "
                                             "neither is loaded", "give each definition its own dag_id"))
            else:
                names = ", ".join(f"{o.dag_id!r} in {o.file}" for o in others)
                found[c.file].append(Problem(
                    c.file, "$.dag_id",
                    f"dag_id {c.dag_id!r} differs from {names} only by case or '-', '_', '.': they would share "
                    "warehouse tables and Asset URIs; neither is loaded",
                    "give each definition a dag_id that differs in letters or digits"))
    owners: dict[tuple[str, str, str, str], list[tuple[Claim, Output]]] = defaultdict(list)
    for c in claims:
        for out in dict((o.place, o) for o in c.writes).values():  # a file's own repeats are its own error
            owners[out.place].append((c, out))
    for holders in owners.values():
        for c, out in holders:
            others = [(o, w) for o, w in holders if o.file != c.file and frozenset((c.file, o.file)) not in refused_pairs]
            if others:
                names = ", ".join(f"{o.file} ({w.path})" for o, w in others)
                tail = ("also writes; " if len(others) == 1 else "also write; ") + (
                    verdict or ("neither is loaded" if len(others) == 1 else "none of them is loaded"))
                found[c.file].append(Problem(c.file, out.path, f"writes {out.what}, which {names} {tail}",
                                             "give each definition its own target table"))
    return dict(found)
