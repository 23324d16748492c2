"""Every SQL a definition holds, rendered for a sample window and parsed by sqlglot before anything runs.

The run renders the same text the same way (dagspec.sql.render_window), so a template typo or SQL
that no parser reads is a line in `dagspec validate` instead of a failed task at night. Where the
dialect is not known without the connection (a SQL source, a transform on the default warehouse),
the SQL must parse in one of the dialects dagspec reads; the database has the last word at run time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.spec.model import (
    BigQuerySource,
    DriftStep,
    ExtractStep,
    MonitorStep,
    Pipeline,
    PublishStep,
    ScoreStep,
    SqlSource,
    TrainStep,
    TransformStep,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

SAMPLE_WINDOW = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
ANY_DIALECT = ("duckdb", "postgres", "mysql", "sqlite", "bigquery", "snowflake", "redshift")
Loc = tuple


def sql_problems(pipeline: Pipeline, sql_dir: Path) -> list[tuple[Loc, str, str]]:
    problems: list[tuple[Loc, str, str]] = []
    for loc, text, dialects in _sql_texts(pipeline, sql_dir):
        step = pipeline.steps[loc[1]]
        history = tuple(h.name for h in step.history) if isinstance(step, TransformStep) else ()
        problem = _check(text, dialects, pipeline.params, history=history)
        if problem is not None:
            problems.append((loc, *problem))
    for i, step in enumerate(pipeline.steps):
        table = step.table if isinstance(step, PublishStep) else None
        for j, text in enumerate(table.post_sql if table is not None else ()):
            this = f'"{table.schema_}"."{table.table}"'
            problem = _check(text, ANY_DIALECT, pipeline.params, {"this": this}, post_load=True)
            if problem is not None:
                problems.append((("steps", i, "table", "post_sql", j), *problem))
    return problems


def _sql_texts(pipeline: Pipeline, sql_dir: Path) -> Iterator[tuple[tuple, str, tuple[str, ...]]]:
    """(loc, SQL text, dialects it may be in) for every SQL the definition holds or names."""
    for i, step in enumerate(pipeline.steps):
        source = step.source if isinstance(step, ExtractStep) else None
        if isinstance(source, (SqlSource, BigQuerySource)) and source.query:
            dialects = ("bigquery",) if isinstance(source, BigQuerySource) else ANY_DIALECT
            yield ("steps", i, "source", "query"), source.query, dialects
        if isinstance(step, TransformStep):
            text = step.query if step.query is not None else _read(sql_dir, step.sql)
            if text is not None:
                where = "query" if step.query is not None else "sql"
                yield ("steps", i, where), text, (step.dialect,) if step.dialect else ANY_DIALECT
        data = step.data if isinstance(step, (TrainStep, ScoreStep, DriftStep)) else None
        at: tuple = ("steps", i, "data")
        if isinstance(step, MonitorStep) and step.labels is not None:
            data, at = step.labels.data, ("steps", i, "labels", "data")
        if data is not None and (data.sql is not None or data.query is not None):
            text = data.query if data.query is not None else _read(sql_dir, data.sql)
            if text is not None:
                yield (*at, "query" if data.query is not None else "sql"), text, ANY_DIALECT


def _read(sql_dir: Path, relative: str) -> str | None:
    from dagspec.sql import read_sql_file

    try:
        return read_sql_file(sql_dir, relative)
    except (OSError, ValueError):  # a missing or misplaced file is reported on its own
        return None


class UnknownHistory(ValueError):
    pass


def _history(name: object, listed: tuple[str, ...]) -> str:
    if name not in listed:
        raise UnknownHistory(f"history({str(name)[:80]!r}) names no entry of the step's 'history' (it has: "
                             f"{', '.join(map(repr, listed)) or 'none'})")
    return f"__history_{listed.index(name)}"


def _check(text: str, dialects: tuple[str, ...], params: dict[str, Any], extra: dict[str, str] | None = None,
           post_load: bool = False, history: tuple[str, ...] = ()) -> tuple[str, str] | None:
    import jinja2
    import sqlglot

    from dagspec.sql import post_load_problem, render_window

    try:
        rendered = render_window(text, *SAMPLE_WINDOW, params, {"ref": lambda step_id: f"__ref_{step_id}",
                                                                "history": lambda name: _history(name, history)},
                                 **(extra or {}))
    except jinja2.TemplateSyntaxError as exc:
        return (f"the SQL is not a valid Jinja template (line {exc.lineno}): {exc.message}",
                "fix the {{ ... }} / {% ... %} syntax")
    except jinja2.UndefinedError as exc:
        return (f"the SQL does not render: {exc.message}",
                "use ds, ds_nodash, ts, data_interval_start, data_interval_end, batch_date, from_date, to_date, "
                "macros or params.<name> (a key of 'params')" + (", or this (the table)" if post_load else ""))
    except UnknownHistory as exc:
        return f"the SQL does not render: {exc}", "add that step ({\"step\": ...}) or table ({\"table\": ...}) to 'history'"
    except Exception as exc:  # a template may raise anything (a macro called wrongly); it is the SQL's problem
        return f"the SQL does not render: {type(exc).__name__}: {exc}", "fix the template expression"
    if post_load and (refused := post_load_problem(rendered)):
        return refused, "keep post_sql to upkeep of the loaded table, e.g. \"ANALYZE {{ this }}\""
    first = ""
    for dialect in dialects:
        try:
            statements = [s for s in sqlglot.parse(rendered, read=dialect) if s is not None]
        except Exception as exc:  # sqlglot raises ParseError, TokenError and, on odd input, others
            first = first or f"{dialect}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            continue
        if len(statements) == 1:
            return None
        return (f"the SQL holds {len(statements)} statements; a step runs exactly one",
                "keep one statement (no trailing second query)")
    shown = dialects[0] if len(dialects) == 1 else "any of " + ", ".join(dialects)
    return f"sqlglot cannot parse the SQL as {shown} ({first[:200]})", "fix the SQL syntax"
