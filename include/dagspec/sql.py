"""SQL text: identifiers quoted per dialect, Jinja rendering, and :name placeholders made native by sqlglot."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Dialects that quote with double quotes: a plain name needs no escaping there, so no sqlglot, whose import
# alone is a large part of a one-day PostgreSQL extract (tests/unit/test_sql_quote.py keeps it equal to sqlglot's).
_DOUBLE_QUOTED = frozenset({"postgres", "duckdb"})


def quote(name: str, dialect: str) -> str:
    """Quote an identifier that the definition model already checked is plain (defence in depth)."""
    if not _PLAIN.match(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    if dialect in _DOUBLE_QUOTED:
        return f'"{name}"'
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def qualified(schema: str, table: str, dialect: str) -> str:
    return f"{quote(schema, dialect)}.{quote(table, dialect)}"


# What a publish's post-load SQL may do: upkeep of the table just loaded, never a change to its rows
# (those go through a transform, checked and versioned like any batch).
POST_LOAD_KEYWORDS = ("ANALYZE", "GRANT", "REVOKE", "COMMENT", "ALTER")


def post_load_problem(rendered: str) -> str | None:
    """Why one rendered post-load statement is refused, or None."""
    words = rendered.split()
    first = words[0].upper() if words else ""
    if first not in POST_LOAD_KEYWORDS:
        return (f"post-load SQL starts with {first[:40]!r}; it may only be {', '.join(POST_LOAD_KEYWORDS[:-1])} "
                "or ALTER ... OWNER TO (change rows in a transform step)")
    if first == "ALTER" and "OWNER TO" not in " ".join(w.upper() for w in words):
        return "post-load ALTER may only change the owner (ALTER TABLE ... OWNER TO ...)"
    return None


def select_window(relation: str, columns: list[str], window_column: str | None = None, edges: Sequence[object] = (),
                  dialect: str = "duckdb", mark: str | None = "?") -> tuple[str, list]:
    """`SELECT columns FROM relation` (both already quoted) and its parameters; with `window_column`, only the
    rows in [edges[0], edges[1]) on it, the edges bound as parameters written `mark` (the driver's style), or
    with `mark=None` written as DuckDB typed literals (see edge_literal)."""
    sql = f"SELECT {', '.join(columns)} FROM {relation}"
    if window_column is None:
        return sql, []
    col = quote(window_column, dialect)
    if mark is None:
        low, high = (edge_literal(e) for e in edges)
        return f"{sql} WHERE {col} >= {low} AND {col} < {high}", []
    return f"{sql} WHERE {col} >= {mark} AND {col} < {mark}", list(edges)


def edge_literal(value: object) -> str:
    """A window edge as a DuckDB typed literal. Binding any Python parameter makes DuckDB import pandas
    (~0.25 s, a third of a one-day extract task); an edge is a date or datetime dagspec computed, never text
    a user wrote, so its ISO form is safe to write. Anything else is refused."""
    if isinstance(value, datetime):
        kind = "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
        return f"{kind} '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"a window edge must be a date or datetime, not {type(value).__name__}")


class _Time:
    """macros.time without sleep(): templates render in the dag-processor too, which a sleep would stall."""

    import time as _t

    time = staticmethod(_t.time)
    strftime = staticmethod(_t.strftime)
    gmtime = staticmethod(_t.gmtime)


class _Macros:
    """The part of Airflow's `macros` namespace SQL files use, so a file written for Airflow renders the same
    here (the core does not import Airflow)."""

    import datetime as _dt
    import uuid

    time = _Time

    datetime = _dt.datetime
    timedelta = _dt.timedelta
    date = _dt.date

    @staticmethod
    def ds_add(ds: str, days: int) -> str:
        from datetime import date, timedelta

        return (date.fromisoformat(ds) + timedelta(days=days)).isoformat()

    @staticmethod
    def ds_format(ds: str, input_format: str, output_format: str) -> str:
        from datetime import datetime

        return datetime.strptime(ds, input_format).strftime(output_format)


def template_context(start: datetime, end: datetime, params: dict[str, Any], day: date | None = None) -> dict[str, Any]:
    """Jinja variables of one batch [start, end), named as in Airflow's task context: ds, ds_nodash, ts,
    ts_nodash, data_interval_start/end, logical_date, prev_ds/next_ds, macros, params; plus dagspec's
    from_date/to_date/batch_date (which SQL should prefer as bound :parameters). ``day``: the batch's date
    (its local date in a time-zoned pipeline); ``ds`` is that date, so a query and its partition agree."""
    day = day or start.date()
    return {
        "ds": day.isoformat(), "ds_nodash": day.strftime("%Y%m%d"),
        "ts": start.isoformat(), "ts_nodash": start.strftime("%Y%m%dT%H%M%S"),
        "data_interval_start": start, "data_interval_end": end, "logical_date": start,
        "prev_ds": (day - timedelta(days=1)).isoformat(), "next_ds": (day + timedelta(days=1)).isoformat(),
        "from_date": start, "to_date": end, "batch_date": day,
        "macros": _Macros, "params": params,
    }


def render(template_text: str, context: dict[str, Any], functions: dict[str, Callable[..., str]]) -> str:
    """Jinja with StrictUndefined: a typo in a variable fails loudly instead of rendering ''.

    Sandboxed (as Airflow's own templates are): a template is text a definition's author wrote, and plain
    Jinja lets `{{ cycler.__init__.__globals__.os.system(...) }}` run anything on the worker."""
    env = _environment()
    env.globals.update(functions)
    return env.from_string(template_text).render(**context)


MAX_TEMPLATE_VALUE = 1_000_000  # characters or items one '*' may build; digits one '**' may build


def _environment() -> Any:
    return _bounded_sandbox()(undefined=_strict(), autoescape=False, keep_trailing_newline=True)


def _strict() -> Any:
    import jinja2

    return jinja2.StrictUndefined


@lru_cache(maxsize=1)
def _bounded_sandbox() -> type:
    """The sandbox, with '*' and '**' bounded: `{{ 'x' * 10**10 }}` would otherwise take the worker's (or the
    dag-processor's) memory while the template renders; Jinja's sandbox bounds only range()."""
    import math

    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*":
                for seq, times in ((left, right), (right, left)):
                    if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int) and \
                            len(seq) * times > MAX_TEMPLATE_VALUE:
                        raise SecurityError(f"a template builds a value of {len(seq) * times:,} items with '*'; "
                                            f"at most {MAX_TEMPLATE_VALUE:,}")
            if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and \
                    right * math.log10(abs(left)) > MAX_TEMPLATE_VALUE:
                raise SecurityError(f"a template raises {left} to the power {right:,}: over "
                                    f"{MAX_TEMPLATE_VALUE:,} digits")
            return super().call_binop(context, operator, left, right)

    return Bounded


def render_window(template_text: str, start: datetime, end: datetime, params: dict[str, Any],
                  functions: dict[str, Callable[..., str]] | None = None, **extra: Any) -> str:
    """A definition's SQL for the window [start, end). Every SQL a definition holds (extract queries,
    transforms, model data) renders here, so each sees the same variables (template_context)."""
    context = template_context(start, end, params, extra.get("batch_date"))
    return render(template_text, {**context, **extra}, functions or {})


def to_dialect(sql_text: str, read: str, write: str, rename: str = "") -> tuple[str, list[str]]:
    """Transpile one statement; returns the SQL in `write` and the names of its bound parameters.

    Bound parameters are written `:name` in any dialect's file; each warehouse gets its native
    form ($name for DuckDB, %(name)s for psycopg, @name for BigQuery). `rename`: a prefix put before every
    parameter's name in the SQL (the names returned stay the file's own).
    """
    import sqlglot
    from sqlglot import exp

    statements = [s for s in sqlglot.parse(sql_text, read=read) if s is not None]
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, found {len(statements)}")
    tree = statements[0]
    names = sorted({p.name for p in tree.find_all(exp.Placeholder) if p.name})
    if rename:
        for p in tree.find_all(exp.Placeholder):
            if p.name:
                p.set("this", rename + p.name)
    return tree.sql(dialect=write), names


def read_sql_file(sql_dir: Path, relative: str) -> str:
    path = (sql_dir / relative).resolve()
    if sql_dir.resolve() not in path.parents:
        raise ValueError(f"SQL file {relative!r} is outside {sql_dir}")
    return path.read_text(encoding="utf-8")
