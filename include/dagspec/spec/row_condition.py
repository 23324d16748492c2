"""A check's row_condition, read without running it: which columns it names, and whether it stays inside the
small part of pandas' query language that filters rows.

GX hands a pandas row_condition to DataFrame.query, which resolves '@name' in GX's own frame and calls any
method a column exposes; what a definition writes must never get that far. The text is parsed by Python's
parser (ast.parse: syntax only, nothing is evaluated) and only comparisons, and/or/not, constants, lists of
constants and a few null/string tests on a column are let through.
"""

from __future__ import annotations

import ast
import re
from typing import Any

PARSERS = ("pandas", "great_expectations")
_BACKTICK = re.compile(r"`([^`]*)`")
_GX_COLUMN = re.compile(r"""col\(\s*(?:"([^"]*)"|'([^']*)')\s*\)""")
_NULL_TESTS = {"isna", "notna", "isnull", "notnull"}
_STRING_TESTS = {"startswith", "endswith"}  # not contains: its pattern is a regex, backtracking on the data
_COMPARISONS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)


class ConditionError(ValueError):
    """A row_condition dagspec will not hand to GX; args: (message, fix)."""

    def __init__(self, message: str, fix: str):
        super().__init__(message, fix)
        self.message, self.fix = message, fix


def condition_columns(kwargs: dict[str, Any]) -> list[str]:
    """The columns an expectation's row_condition names, in order, each once ([] without a condition).
    Raises ConditionError when the condition cannot be read safely."""
    text = kwargs.get("row_condition")
    if not text:
        return []
    if not isinstance(text, str):
        raise ConditionError("row_condition must be text", "write it as a string, e.g. \"status == 'paid'\"")
    parser = kwargs.get("condition_parser")
    if parser == "great_expectations":
        names = [a or b for a, b in _GX_COLUMN.findall(text)]
        if not names:
            raise ConditionError(
                f"row_condition {text!r} names no column", 'write it as col("status")=="paid" for the great_expectations parser'
            )
        return list(dict.fromkeys(names))
    if parser != "pandas":
        raise ConditionError(
            f"a row_condition needs condition_parser 'pandas' (or 'great_expectations' for GX's SQL engine), not {parser!r}",
            'add "condition_parser": "pandas"',
        )
    return _pandas_columns(text)


def _pandas_columns(text: str) -> list[str]:
    quoted: dict[str, str] = {}

    def placeholder(match: re.Match[str]) -> str:
        name = f"__dagspec_column_{len(quoted)}"
        quoted[name] = match.group(1)
        return name

    try:
        tree = ast.parse(_BACKTICK.sub(placeholder, text).strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(
            f"row_condition {text!r} is not a pandas query expression: {exc.msg}",
            "write a comparison such as status == 'paid' (quote names with spaces in backticks)",
        ) from None
    names: list[str] = []
    _walk(tree.body, names, text)
    return list(dict.fromkeys(quoted.get(n, n) for n in names))


def _walk(node: ast.AST, names: list[str], text: str) -> None:
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _walk(value, names, text)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        _walk(node.left, names, text)
        _walk(node.right, names, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert, ast.USub)):
        _walk(node.operand, names, text)
    elif isinstance(node, ast.Compare) and all(isinstance(op, _COMPARISONS) for op in node.ops):
        for part in (node.left, *node.comparators):
            _walk(part, names, text)
    elif isinstance(node, ast.Name):
        names.append(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        pass
    elif isinstance(node, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) for e in node.elts):
        pass
    elif isinstance(node, ast.Call) and _column_test(node):
        names.append(_column_test(node))  # type: ignore[arg-type]
    else:
        raise ConditionError(
            f"row_condition {text!r}: {ast.unparse(node)!r} is not allowed (only comparisons, and/or/not, "
            "constants, lists of constants, col.isna()/notna() and col.str.startswith/endswith('...'))",
            "rewrite the condition with those; no '@' variables, other calls or attributes",
        )


def _column_test(node: ast.Call) -> str | None:
    """The column of `col.isna()` or `col.str.startswith('x')` (a constant argument), else None."""
    func = node.func
    if node.keywords or not isinstance(func, ast.Attribute):
        return None
    if func.attr in _NULL_TESTS and not node.args and isinstance(func.value, ast.Name):
        return func.value.id
    if (
        func.attr in _STRING_TESTS
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "str"
        and isinstance(func.value.value, ast.Name)
    ):
        return func.value.value.id
    return None
