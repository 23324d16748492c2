"""SQL text: identifiers quoted per dialect, Jinja rendering, and :name placeholders made native by sqlglot."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import sqlglot
from sqlglot import exp

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def quote(name: str, dialect: str) -> str:
    """Quote an identifier that the definition model already checked is plain (defence in depth)."""
    if not _PLAIN.match(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def qualified(schema: str, table: str, dialect: str) -> str:
    return f"{quote(schema, dialect)}.{quote(table, dialect)}"


def render(template_text: str, context: dict[str, Any], functions: dict[str, Callable[..., str]]) -> str:
    """Jinja with StrictUndefined: a typo in a variable fails loudly instead of rendering ''."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.globals.update(functions)
    return env.from_string(template_text).render(**context)


def to_dialect(sql_text: str, read: str, write: str) -> tuple[str, list[str]]:
    """Transpile one statement; returns the SQL in `write` and the names of its bound parameters.

    Bound parameters are written `:name` in any dialect's file; each warehouse gets its native
    form ($name for DuckDB, %(name)s for psycopg, @name for BigQuery).
    """
    statements = [s for s in sqlglot.parse(sql_text, read=read) if s is not None]
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, found {len(statements)}")
    tree = statements[0]
    names = sorted({p.name for p in tree.find_all(exp.Placeholder) if p.name})
    return tree.sql(dialect=write), names


def read_sql_file(sql_dir: Path, relative: str) -> str:
    path = (sql_dir / relative).resolve()
    if sql_dir.resolve() not in path.parents:
        raise ValueError(f"SQL file {relative!r} is outside {sql_dir}")
    return path.read_text(encoding="utf-8")
