"""Definition format versions: read any older definition as the current version.

A definition says which format it was written in (``"version"``, default 1). When the format
changes, the model moves to version N+1 and one ``Migration`` (N -> N+1) is registered here; old
files keep loading, unchanged on disk. Migrations work on the raw JSON, before validation, so an
error in an old file still names the key as that file spells it (``renamed`` maps the new
key back to the old one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagspec.spec.errors import json_path

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Migration:
    """One step of the format: what version ``source`` becomes in ``source + 1``."""

    source: int
    change: Callable[[dict[str, Any]], dict[str, Any]]
    # new key -> old key, per object kind ("pipeline", "step"): error paths point at the file's own text.
    renamed: dict[str, dict[str, str]] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Versions:
    current: int
    migrations: tuple[Migration, ...] = ()

    def upgrade(self, data: dict[str, Any]) -> tuple[dict[str, Any], int, list[tuple[Loc, str, str]]]:
        """(data at the current version, the version the file was written in, problems)."""
        version = data.get("version", 1)
        if isinstance(version, bool) or not isinstance(version, int):
            return data, self.current, [(("version",), f"version must be a whole number, got {version!r}",
                                         f"write \"version\": {self.current}")]
        if version < 1 or version > self.current:
            supported = ", ".join(str(v) for v in range(1, self.current + 1))
            return data, self.current, [(("version",), f"unsupported definition version {version!r}",
                                         f"use \"version\": {self.current} (this dagspec reads versions {supported})")]
        steps = {m.source: m for m in self.migrations}
        for v in range(version, self.current):
            data = steps[v].change(dict(data))
            data["version"] = v + 1
        return data, version, []

    def original_loc(self, loc: Loc, written: int) -> Loc:
        """A path in the migrated data -> the same place as the file (written at ``written``) spells it."""
        if written >= self.current:
            return loc
        out = list(loc)
        for m in sorted(self.migrations, key=lambda m: -m.source):
            if m.source < written:
                continue
            if out and isinstance(out[0], str):
                out[0] = m.renamed.get("pipeline", {}).get(out[0], out[0])
            if len(out) >= 3 and out[0] == "steps" and isinstance(out[2], str):
                out[2] = m.renamed.get("step", {}).get(out[2], out[2])
        return tuple(out)

    def path(self, loc: Loc, written: int) -> str:
        return json_path(self.original_loc(loc, written))


# The format in force. Version 1 is the first; a new version appends its Migration here.
CURRENT = Versions(current=1)
