"""min_value/max_value as Great Expectations reads them, for a column of a given DuckDB type.

GX's models turn ISO strings into dates and date-times, and its pandas engine compares column
values and aggregates with those; a date-only bound against timestamps, a date-time against dates,
or a naive bound against zoned values (or the reverse), raises there. The same cases here raise CheckError with a message
that says what to write instead, so a
check never passes in dagspec that GX would fail.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from dagspec.spec.expectation_args import iso_value

NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
           "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")
TEMPORAL = ("DATE", "TIMESTAMP")
# GX's pandas engine refuses numeric or date bounds on these; prefixes of DuckDB type names (TIMESTAMP_NS, TIMESTAMP WITH
# TIME ZONE, ...)
NOT_ORDERED = {"VARCHAR", "BOOLEAN"}


class CheckError(ValueError):
    """A check that cannot be computed as written (GX would raise too): reported on the check, not the run."""


def numeric(column_type: str) -> bool:
    return column_type.upper().startswith(NUMERIC)


def zoned(column_type: str) -> bool:
    return column_type.upper().endswith("WITH TIME ZONE")


def temporal(column_type: str) -> bool:
    return column_type.upper().startswith(TEMPORAL)


def bound(value: Any, column_type: str, key: str) -> Any:
    """The bound to compare with (a number, a datetime), or CheckError."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        if temporal(column_type) or column_type in NOT_ORDERED:
            hint = ": write an ISO date-time string, e.g. \"2025-01-31T00:00:00\"" if temporal(column_type) else ""
            raise CheckError(f"{key} {value!r} is a number and column values are {column_type}{hint}")
        return value
    parsed = iso_value(value)
    if parsed is None:
        raise CheckError(f"{key} {value!r} is neither a number nor an ISO date/date-time string")
    if not temporal(column_type):
        if numeric(column_type) or column_type in NOT_ORDERED:
            raise CheckError(f"{key} {value!r} is a date and column values are {column_type}: write a number")
        return parsed  # a type this module does not know: the database compares
    if column_type == "DATE":
        if isinstance(parsed, dt.datetime):
            raise CheckError(f"{key} {value!r} is a date-time and column values are dates (Great Expectations "
                             f"cannot compare them): write \"{parsed.date().isoformat()}\"")
        return parsed
    if not isinstance(parsed, dt.datetime):
        raise CheckError(f"{key} {value!r} is a date and column values are {column_type}, compared as date-times "
                         f"(Great Expectations cannot compare a date with them): write \"{value}T00:00:00\"")
    if (parsed.tzinfo is not None) != zoned(column_type):
        want = "with a time zone, e.g. \"2025-01-31T00:00:00Z\"" if zoned(column_type) else \
            "without a time zone, e.g. \"2025-01-31T00:00:00\""
        raise CheckError(f"{key} {value!r} and the column ({column_type}) differ in having a time zone "
                         f"(Great Expectations cannot compare them): write the bound {want}")
    return parsed


def comparable(observed: Any) -> Any:
    """An aggregate as DuckDB returns it, as GX's pandas engine sees it."""
    if isinstance(observed, Decimal):
        return float(observed)  # GX gets DECIMAL columns as floats (DuckDB's fetch_df) and compares those
    return observed


def comparable_values(values: list, column_type: str) -> list:
    """The value_set members that can equal a value of the column as pandas compares (1 == True, 1 != "1");
    SQL would cast the others (and fail on "a" for a number) or, for null, make every row's test unknown."""
    values = [v for v in values if v is not None]
    if column_type == "VARCHAR":
        return [v for v in values if isinstance(v, str)]
    if numeric(column_type) or column_type == "BOOLEAN":
        return [v for v in values if isinstance(v, (bool, int, float))]
    return values
