"""A definition file -> its JSON object, within the limits a definition keeps to; every break a DefinitionError.

Python's json module takes things a definition must not hold, or fails on them with errors that are
not JSONDecodeError: an integer of thousands of digits (ValueError from int's digit limit), deep
nesting (RecursionError), NaN and Infinity (not JSON at all), 1e400 (inf), and a key given twice
in one object (silently, the last one wins). Each is refused here with where and why.
"""

from __future__ import annotations

import json
import math
import re
import stat
from collections import Counter
from pathlib import Path
from typing import Any

from dagspec.spec.errors import DefinitionError, Problem, json_path

MAX_BYTES = 1_000_000  # a pipeline is a page of JSON; megabytes mean a wrong file was dropped
MAX_DEPTH = 64  # a definition nests about six levels; far more means a generated or hostile file
MAX_DIGITS = 50  # any count, id or bound in a definition fits; int() of thousands of digits is the bomb
Loc = tuple


def read_definition(path: Path, name: str) -> bytes:
    """The bytes of a definition file, or DefinitionError (unreadable, not a regular file, too big)."""
    try:
        # Never more than the limit, and never from a pipe or device: either would stall every DAG's parse.
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise DefinitionError([Problem(name, "$", "not a regular file", "drop a JSON file, not a pipe or device")])
        if info.st_size > MAX_BYTES:
            raise _file_too_big(name, info.st_size)
        with path.open("rb") as f:
            raw_bytes = f.read(MAX_BYTES + 1)  # it may have grown since
    except OSError as exc:
        raise DefinitionError([Problem(name, "$", f"cannot read the file: {exc.strerror}")]) from None
    return raw_bytes


def _file_too_big(name: str, size: int) -> DefinitionError:
    return DefinitionError([Problem(name, "$", f"file is {size:,} bytes; a definition is at most {MAX_BYTES:,}",
                                    "split it, or check that the right file was dropped")])


def decode_definition(raw_bytes: bytes, name: str) -> tuple[dict[str, Any], list[tuple[Loc, str, str]]]:
    """The JSON object of a definition file and the duplicate keys found in it, as (loc, message, fix);
    DefinitionError when it is not one JSON object within the limits a definition keeps to."""
    if len(raw_bytes) > MAX_BYTES:
        raise _file_too_big(name, len(raw_bytes))
    try:
        text = raw_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            [Problem(name, "$", f"not UTF-8 text (bad byte at offset {exc.start})", "save the file as UTF-8")]
        ) from None
    if not text.strip():
        raise DefinitionError([Problem(name, "$", "the file is empty", "write a JSON object with dag_id and steps")])
    data, twice, height = decode_json(text, name)
    if not isinstance(data, dict):
        raise DefinitionError(
            [Problem(name, "$", f"the top level is a JSON {type(data).__name__ if data is not None else 'null'}, "
                     "not an object", "write one pipeline per file as a JSON object {...}")]
        )
    # The top-level object is level 0 of a JSON path, as in bounds_and_duplicates.
    return data, bounds_and_duplicates(data, twice, name, height > MAX_DEPTH + 1)


class _Refused(Exception):
    def __init__(self, message: str, fix: str, token: str) -> None:
        super().__init__(message)
        self.message, self.fix, self.token = message, fix, token


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _Refused(f"a number with {digits:,} digits", f"write numbers of at most {MAX_DIGITS} digits "
                       "(quote a long id as a string)", "number")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is too large", "write a smaller number", "number")
    return value


def _constant(text: str) -> float:
    raise _Refused(f"{text} is not a JSON value", "write a number, or null", text)


def decode_json(text: str, name: str) -> tuple[Any, dict[int, list[str]], int]:
    """(value, {id(object): keys given twice in it}, how many containers deep it nests); DefinitionError for
    anything else that is wrong. The depth is counted while parsing: the hook sees each object once, with
    its children already built, so no second pass over the data is needed for a clean file."""
    twice: dict[int, list[str]] = {}
    heights: dict[int, int] = {}
    keep: list[dict] = []  # ids index the dicts above: none may be freed (a dropped duplicate's value) and reused

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        keep.append(obj)
        if len(obj) != len(items):
            twice[id(obj)] = [k for k, n in Counter(k for k, _ in items).items() if n > 1]
        height = 0
        for _, value in items:
            kind = type(value)
            if kind is dict:
                height = max(height, heights[id(value)])
            elif kind is list:
                height = max(height, _list_height(value, heights))
        heights[id(obj)] = height + 1
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        fix = "remove comments: JSON has none (use a \"description\" field)" if _has_comment(text) else "fix the JSON syntax"
        raise DefinitionError(
            [Problem(name, f"line {exc.lineno}, column {exc.colno}", f"invalid JSON: {exc.msg}", fix)]
        ) from None
    except _Refused as exc:
        raise DefinitionError([Problem(name, _where(text, exc.token), exc.message, exc.fix)]) from None
    except RecursionError:
        raise DefinitionError([Problem(name, "$", f"nested deeper than {MAX_DEPTH} levels",
                                       "a definition nests a few levels: check that the right file was dropped")]) from None
    height = heights.get(id(data), 0) if isinstance(data, dict) else _list_height(data, heights) if isinstance(
        data, list) else 0
    return data, twice, height


def _list_height(items: list, heights: dict[int, int]) -> int:
    best = 0
    stack: list[tuple[list, int]] = [(items, 1)]
    while stack:
        node, depth = stack.pop()
        best = max(best, depth)
        for value in node:
            kind = type(value)
            if kind is list:
                stack.append((value, depth + 1))
            elif kind is dict:
                best = max(best, depth + heights[id(value)])
    return best


def _outer(loc: Loc) -> str:
    """The path down to where the nesting starts: the last key above the run of nested lists, at most 12 deep."""
    end = len(loc)
    while end and isinstance(loc[end - 1], int):
        end -= 1
    return json_path(loc[:min(end, 12)])


def _has_comment(text: str) -> bool:
    return any(line.lstrip().startswith(("//", "/*", "#")) for line in text.splitlines())


_TOKENS = {
    "number": re.compile(r'"(?:[^"\\]|\\.)*"|-?\d{' + str(MAX_DIGITS + 1) + r',}|-?\d[\d.eE+-]*'),
    "NaN": re.compile(r'"(?:[^"\\]|\\.)*"|NaN'),
    "Infinity": re.compile(r'"(?:[^"\\]|\\.)*"|Infinity'),
    "-Infinity": re.compile(r'"(?:[^"\\]|\\.)*"|-Infinity'),
}


def _where(text: str, token: str) -> str:
    """'line L, column C' of the first refused token outside strings (the json module does not say)."""
    for m in _TOKENS[token].finditer(text):
        found = m.group()
        if found.startswith('"'):
            continue
        if token == "number" and not _too_big(found):
            continue
        line = text.count("\n", 0, m.start()) + 1
        return f"line {line}, column {m.start() - (text.rfind(chr(10), 0, m.start()) + 1) + 1}"
    return "$"


def _too_big(number: str) -> bool:
    if len(number.lstrip("-")) > MAX_DIGITS and number.lstrip("-").isdigit():
        return True
    try:
        return not math.isfinite(float(number))
    except ValueError:
        return False


def bounds_and_duplicates(data: Any, twice: dict[int, list[str]], name: str, deep: bool) -> list[tuple[Loc, str, str]]:
    """Keys given twice, as (loc, message, fix); DefinitionError when the nesting is too deep to go on.

    ``deep``: decode_json counted more levels than that. Iterative (the point is to survive depths recursion would not),
    and run only when something is wrong: building paths for 300,000 containers takes seconds.
    """
    if not twice and not deep:
        return []
    problems: list[tuple[Loc, str, str]] = []
    stack: list[tuple[Any, Loc]] = [(data, ())]
    while stack:
        node, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            raise DefinitionError([Problem(name, _outer(loc), f"nested deeper than {MAX_DEPTH} levels",
                                           "a definition nests a few levels: check that the right file was dropped")])
        if isinstance(node, dict):
            for key in twice.get(id(node), ()):
                problems.append(((*loc, key), f"key {key!r} is given more than once in this object "
                                 "(only the last one would count)", f"keep one {key!r}"))
            stack.extend((v, (*loc, k)) for k, v in reversed(node.items()) if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, (*loc, i)) for i, v in reversed(list(enumerate(node))) if isinstance(v, (dict, list)))
    return problems  # in document order: the walk visits objects as the file lists them
