"""Known Great Expectations expectation types, from a list generated off the pinned GX release."""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def known_types() -> tuple[str, ...]:
    data = json.loads((Path(__file__).with_name("gx_expectation_types.json")).read_text())
    return tuple(data["types"])


def check_expectation_type(name: str) -> str:
    if name in known_types():
        return name
    close = difflib.get_close_matches(name, known_types(), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "; see include/schema/dagspec.schema.json for the list"
    raise ValueError(f"unknown Great Expectations expectation type {name!r}{hint}")
