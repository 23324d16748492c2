"""Errors a person can act on: which file, where in it (a JSON path), what is wrong, how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence


def json_path(loc: Sequence[str | int]) -> str:
    """('steps', 2, 'source') -> '$.steps[2].source' (the notation editors and jq users know)."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.path}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class DefinitionError(ValueError):
    """Every problem found in one definition file, reported together."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file if self.problems else "?"
