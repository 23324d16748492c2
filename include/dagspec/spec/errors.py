"""Errors a person can act on: which file, where in it (a JSON path), what is wrong, how to fix it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$-]+$")


def json_path(loc: Sequence[str | int]) -> str:
    """('steps', 2, 'source') -> '$.steps[2].source' (the notation editors and jq users know). Any other
    key is written ["..."], JSON- and ASCII-escaped: a key holding a newline or a terminal escape must
    not split or colour the one line a problem takes."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if _PLAIN_KEY.match(str(part)) else f"[{json.dumps(str(part))}]"
    return out


def printable(name: str) -> str:
    """A file name as one plain line of text: a newline, bidi mark or terminal escape in it is written escaped."""
    return name if name.isprintable() else ascii(name)[1:-1]


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{printable(self.file)}: {self.path}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class DefinitionError(ValueError):
    """Every problem found in one definition file, reported together."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file if self.problems else "?"
