"""Redshift's column types: from Arrow (for a table COPY loads) and from a result's type OIDs (for a table
a query fills). Text is VARCHAR(65535), Redshift's widest (it has no unbounded TEXT); binary is VARBYTE."""

from __future__ import annotations

import pyarrow as pa

WIDEST_VARCHAR = "character varying(65535)"
# Type OIDs as Redshift's leader node (and PostgreSQL) report them in a result's description.
BY_OID = {16: "boolean", 20: "bigint", 21: "smallint", 23: "integer", 700: "real", 701: "double precision",
          25: WIDEST_VARCHAR, 1043: WIDEST_VARCHAR, 1042: WIDEST_VARCHAR, 1082: "date",
          1114: "timestamp without time zone", 1184: "timestamp with time zone", 1083: "time without time zone",
          17: "varbyte"}
NUMERIC_OID = 1700


def column_type(oid: int, precision: int | None, scale: int | None) -> str:
    if oid == NUMERIC_OID:
        # An aggregate's NUMERIC may come without a declared size: wide enough for money sums, 10 places.
        return f"numeric({precision},{scale})" if precision else "numeric(38,10)"
    if oid in BY_OID:
        return BY_OID[oid]
    raise TypeError(f"a result column has type OID {oid}, which the Redshift warehouse cannot store yet; cast it")


def redshift_type(t: pa.DataType, column: str = "") -> str:
    """PostgreSQL's names where Redshift shares them; its own for text, binary and wide decimals."""
    from dagspec.warehouse.postgres import pg_type

    if pa.types.is_dictionary(t):
        return redshift_type(t.value_type, column)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return WIDEST_VARCHAR
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "varbyte"
    if pa.types.is_decimal(t) and t.precision > 38:
        raise TypeError(f"column {column!r} is {t}: Redshift's NUMERIC holds at most 38 digits")
    return pg_type(t, column)
