"""JSON cells as typed values: a test file's rows become Arrow tables, and expected cells take the type of the
column they are compared with, so a Decimal is compared as a Decimal and a date as a date (never as text)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from dagspec.spec.transform_tests import Rows, plain_type

_DECIMAL = re.compile(r"^(?:decimal|numeric)\((\d+),(\d+)\)$")
_NAMED = {
    "string": pa.string(), "text": pa.string(), "varchar": pa.string(), "boolean": pa.bool_(), "bool": pa.bool_(),
    "smallint": pa.int16(), "integer": pa.int32(), "int": pa.int32(), "bigint": pa.int64(), "real": pa.float32(),
    "float": pa.float64(), "double": pa.float64(), "date": pa.date32(), "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
}


class CellError(ValueError):
    """A cell that cannot be a value of its column's type; the message says what it should look like."""


def arrow_type(name: str) -> pa.DataType:
    plain = plain_type(name)
    found = _DECIMAL.match(plain)
    if found:
        precision, scale = int(found[1]), int(found[2])
        if not 1 <= precision <= 38 or scale > precision:
            raise CellError(f"{name} is not a decimal type: precision 1..38, scale at most the precision")
        return pa.decimal128(precision, scale)
    return _NAMED[plain]


def inferred_type(values: list[Any]) -> pa.DataType | None:
    """What JSON values say about their column, or None when they do not say (no values, or mixed kinds)."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pa.bool_()
    if kinds == {int}:
        return pa.int64()
    if kinds and kinds <= {int, float}:
        return pa.float64()
    if kinds == {str}:
        return pa.string()
    return None


def cell(value: Any, kind: pa.DataType) -> Any:
    """The JSON value as a Python value of the Arrow type; CellError when it is not one."""
    if value is None:
        return None
    if pa.types.is_boolean(kind):
        return _checked(value, isinstance(value, bool), "true or false")
    if pa.types.is_integer(kind):
        return _checked(value, isinstance(value, int) and not isinstance(value, bool), "a whole number")
    if pa.types.is_floating(kind):
        return float(_checked(value, isinstance(value, int | float) and not isinstance(value, bool), "a number"))
    if pa.types.is_decimal(kind):
        return _decimal(value, kind)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _checked(value, isinstance(value, str), "text in double quotes")
    if pa.types.is_date(kind):
        return _parsed(value, date.fromisoformat, "a date written YYYY-MM-DD")
    if pa.types.is_time(kind):
        return _parsed(value, time.fromisoformat, "a time written HH:MM:SS")
    if pa.types.is_timestamp(kind):
        return _timestamp(value, kind)
    return value  # lists, structs: compared as JSON gives them


def _checked(value: Any, ok: bool, wanted: str) -> Any:
    if not ok:
        raise CellError(f"{value!r} is not {wanted}")
    return value


def _parsed(value: Any, parse: Any, wanted: str) -> Any:
    if not isinstance(value, str):
        raise CellError(f"{value!r} is not {wanted}")
    try:
        return parse(value)
    except ValueError:
        raise CellError(f"{value!r} is not {wanted}") from None


def _decimal(value: Any, kind: pa.Decimal128Type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise CellError(f"{value!r} is not a decimal number (write it as text, e.g. \"10.50\")")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise CellError(f"{value!r} is not a decimal number (write it as text, e.g. \"10.50\")") from None
    if not number.is_finite() or number != round(number, kind.scale):
        raise CellError(f"{value!r} does not fit {kind.scale} decimal place(s)")
    return number


def _timestamp(value: Any, kind: pa.TimestampType) -> datetime:
    moment = _parsed(value, datetime.fromisoformat, "a timestamp written YYYY-MM-DD HH:MM:SS[+HH:MM]")
    if kind.tz is None:  # a naive column holds UTC wall time: an offset given is converted to it
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment).astimezone(UTC)


def column_names(rows: Rows) -> list[str]:
    """Declared columns first, then every key of the rows in the order first seen."""
    return list(dict.fromkeys([*rows.columns, *(k for r in rows.rows for k in r)]))


class TableError(ValueError):
    def __init__(self, where: str, message: str, fix: str):
        super().__init__(message)
        self.where, self.message, self.fix = where, message, fix


def arrow_table(rows: Rows, where: str) -> pa.Table:
    """The rows as an Arrow table; TableError naming the JSON path of the first cell or column it cannot type."""
    fields, arrays = [], []
    for name in column_names(rows):
        values = [r.get(name) for r in rows.rows]
        kind = arrow_type(rows.columns[name]) if name in rows.columns else inferred_type(values)
        if kind is None:
            seen = sorted({type(v).__name__ for v in values if v is not None})
            why = f"mixes {' and '.join(seen)} values" if seen else "has no value that is not null"
            raise TableError(f"{where}.rows", f"column {name!r} {why}, so its type is unknown",
                             f"declare it: \"columns\": {{\"{name}\": \"<type>\"}}")
        typed = []
        for i, value in enumerate(values):
            try:
                typed.append(cell(value, kind))
            except CellError as exc:
                raise TableError(f"{where}.rows[{i}].{name}", f"{exc} (column {name!r} is {kind})",
                                 f"write a {kind} value, or change its type in \"columns\"") from None
        fields.append(pa.field(name, kind))
        arrays.append(pa.array(typed, type=kind))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
