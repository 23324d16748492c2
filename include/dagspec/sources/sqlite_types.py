"""Column types of a SQLite query's result, from the declared types of the table columns it selects.

SQLite's cursor describes no types, so a query's columns were guessed from their values: a window
with no rows staged every column as text, and a DATETIME came out as text where table mode gives a
timestamp. sqlglot resolves each output column to the table column it reads (aliases, joins, CTEs),
so the partition's schema follows the tables' declarations whatever the window holds. Expressions
sqlglot cannot trace to a column keep the old rule (their values decide).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.types import TypeEngine


def declared_types(conn: Connection, query: str) -> dict[str, Any]:
    """Output column name -> SQLAlchemy type of the table column it selects (only those that are plain columns)."""
    from sqlalchemy import inspect

    try:
        tree = sqlglot.parse_one(query, read="sqlite")
    except SqlglotError:
        return {}
    inspector = inspect(conn)
    declared: dict[str, dict[str, Any]] = {}
    for table in tree.find_all(exp.Table):
        name = table.name
        if name in declared or not name:
            continue
        try:
            declared[name] = {c["name"]: c["type"] for c in inspector.get_columns(name, schema=table.db or None)}
        except Exception:  # a CTE's name, or a table we cannot see: its columns stay untraced
            continue
    schema = {t: {c: _type_name(sa) for c, sa in cols.items()} for t, cols in declared.items() if cols}
    try:
        tree = annotate_types(qualify(tree, schema=schema, dialect="sqlite", validate_qualify_columns=False),
                              schema=schema, dialect="sqlite")
    except SqlglotError:
        return {}
    aliases = {source.alias_or_name: source.name for source in tree.find_all(exp.Table)}
    out: dict[str, Any] = {}
    for projection in tree.selects if isinstance(tree, exp.Query) else []:
        column = projection.unalias()
        if isinstance(column, exp.Column) and column.table:
            sa_type = declared.get(aliases.get(column.table, column.table), {}).get(column.name)
        else:  # an expression: sqlglot's type for it, where SQLite computes that type too
            sa_type = _EXPRESSION_TYPES.get(projection.type.this) if projection.type else None
        if sa_type is not None:
            out[projection.alias_or_name] = sa_type
    return out


def _type_name(sa_type: TypeEngine) -> str:
    try:
        name = str(sa_type)
        exp.DataType.build(name, dialect="sqlite")
        return name
    except Exception:  # a type sqlglot does not know: text is what SQLite would compare it as
        return "TEXT"


def _expression_types() -> dict:
    from sqlalchemy import Boolean, Float, Integer, String

    t = exp.DataType.Type
    ints = (t.TINYINT, t.SMALLINT, t.INT, t.BIGINT)
    return {**{k: Integer() for k in ints}, t.DOUBLE: Float(), t.FLOAT: Float(), t.BOOLEAN: Boolean(),
            t.TEXT: String(), t.VARCHAR: String()}


_EXPRESSION_TYPES = _expression_types()
