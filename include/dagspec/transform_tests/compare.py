"""The transform's rows against the expected ones: which columns do not match, which rows are missing, which
were not expected, and for a missing row that has a near twin among the unexpected, which cells differ."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dagspec.spec.transform_tests import Expected
from dagspec.transform_tests.values import CellError, arrow_type, cell

Cells = tuple[Any, ...]


@dataclass
class Changed:
    expected: Cells
    got: Cells
    columns: list[str]  # the compared columns whose cells differ


@dataclass
class Diff:
    columns: list[str]  # the columns compared: those the expected rows name
    column_problems: list[str] = field(default_factory=list)
    missing: list[Cells] = field(default_factory=list)  # expected, not produced
    unexpected: list[Cells] = field(default_factory=list)  # produced, not expected
    changed: list[Changed] = field(default_factory=list)  # a missing row beside the produced row nearest to it
    produced: int = 0

    @property
    def passed(self) -> bool:
        return not (self.column_problems or self.missing or self.unexpected or self.changed)


def compare(result: pa.Table, expect: Expected) -> Diff:
    names = list(dict.fromkeys([*expect.columns, *(k for r in expect.rows for k in r)]))
    diff = Diff(columns=names, produced=result.num_rows)
    have = {f.name: f.type for f in result.schema}
    for name in names:
        if name not in have:
            diff.column_problems.append(f"column {name!r} is not in the result (it has {', '.join(have) or 'none'})")
        elif name in expect.columns and arrow_type(expect.columns[name]) != have[name]:
            diff.column_problems.append(f"column {name!r} is {have[name]}, expected {arrow_type(expect.columns[name])}")
    if diff.column_problems:
        return diff
    wanted = []
    for i, row in enumerate(expect.rows):
        try:
            wanted.append(tuple(cell(row.get(n), have[n]) for n in names))
        except CellError as exc:
            bad = next(n for n in names if _fails(row.get(n), have[n]))
            diff.column_problems.append(f"expect.rows[{i}].{bad}: {exc}, but the result's column {bad!r} is "
                                        f"{have[bad]}")
    if diff.column_problems:
        return diff
    # With no column named (expect: no rows), each produced row is an empty tuple: still a row too many.
    got = [tuple(r[n] for n in names) for r in result.select(names).to_pylist()] if names else [()] * result.num_rows
    if expect.ordered:
        _ordered(diff, wanted, got)
    else:
        _unordered(diff, wanted, got)
    return diff


def _fails(value: Any, kind: pa.DataType) -> bool:
    try:
        cell(value, kind)
    except CellError:
        return True
    return False


def _key(cells: Cells) -> tuple:
    # A cell the multiset cannot hash (a list) counts by its text; typed scalars stay themselves.
    return tuple(repr(c) if isinstance(c, list | dict) else c for c in cells)


def _unordered(diff: Diff, wanted: list[Cells], got: list[Cells]) -> None:
    left = Counter(_key(r) for r in got)
    by_key = {_key(r): r for r in got}
    for row in wanted:
        if left[_key(row)] > 0:
            left[_key(row)] -= 1
        else:
            diff.missing.append(row)
    extra = [by_key[k] for k, n in left.items() for _ in range(n)]
    _pair(diff, extra)


def _ordered(diff: Diff, wanted: list[Cells], got: list[Cells]) -> None:
    for want, have in zip(wanted, got, strict=False):
        if _key(want) != _key(have):
            diff.changed.append(Changed(want, have, _differing(diff.columns, want, have)))
    diff.missing += wanted[len(got):]
    diff.unexpected += got[len(wanted):]


def _pair(diff: Diff, extra: list[Cells]) -> None:
    """Show a missing row beside the unexpected row sharing most of its cells (at least one): "amount
    differs" says more than a row gone and a row come."""
    still_missing = []
    for row in diff.missing:
        best, score = None, 0
        for i, other in enumerate(extra):
            same = sum(a == b and type(a) is type(b) for a, b in zip(row, other, strict=True))
            if same > score:
                best, score = i, same
        if best is None:
            still_missing.append(row)
            continue
        other = extra.pop(best)
        diff.changed.append(Changed(row, other, _differing(diff.columns, row, other)))
    diff.missing, diff.unexpected = still_missing, extra


def _differing(names: list[str], a: Cells, b: Cells) -> list[str]:
    return [n for n, x, y in zip(names, a, b, strict=True) if x != y or type(x) is not type(y)]
