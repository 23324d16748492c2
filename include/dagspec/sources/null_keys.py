"""Rows an incremental extract can never stage: their incremental column is NULL, so no window holds them.

Counted once per extract task (not per batch) so the log can say how many rows no run will ever pick
up. On a column declared NOT NULL nothing is queried. The count is advice: if it cannot be taken
(permissions, a view, a locked file) the extract itself is not failed for it.
"""

from __future__ import annotations

import logging

from dagspec.connections import ConnectionInfo, sqlalchemy_url
from dagspec.spec.model import SqlSource
from dagspec.sql import quote

log = logging.getLogger(__name__)


def null_key_rows(info: ConnectionInfo, source: SqlSource) -> int:
    """How many rows of the source table have a NULL incremental column (0 in query or snapshot mode)."""
    if getattr(source, "kind", "sql") != "sql" or source.table is None or source.incremental_column is None:
        return 0
    try:
        if info.conn_type == "duckdb" and not info.extra.get("sqlalchemy_url"):
            return _duckdb_count(info, source)
        if info.conn_type in ("postgres", "postgresql"):  # psycopg: importing SQLAlchemy alone costs ~0.2 s per task
            from dagspec.sources import postgres

            return postgres.null_key_rows(info, source)
        return _sqlalchemy_count(info, source)
    except Exception as exc:  # advice only: the rows in the window were staged already
        log.info("could not count rows with NULL %s in %s: %s", source.incremental_column, source.table,
                 info.scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
        return 0


def _duckdb_count(info: ConnectionInfo, source: SqlSource) -> int:
    from dagspec.connections import database_file
    from dagspec.sources.duckdb_source import attach, catalog

    con = attach(info, database_file(info))
    try:
        schema, columns = catalog(con, info, source)
        column = columns[source.incremental_column.lower()].name
        relation = f"{quote(schema, 'duckdb')}.{quote(source.table, 'duckdb')}"
        return con.execute(f"SELECT count(*) FROM {relation} WHERE {quote(column, 'duckdb')} IS NULL").fetchone()[0]
    finally:
        con.close()


def _sqlalchemy_count(info: ConnectionInfo, source: SqlSource) -> int:
    from sqlalchemy import MetaData, Table, create_engine, func, select

    engine = create_engine(sqlalchemy_url(info))
    try:
        with engine.connect() as conn:
            table = Table(source.table, MetaData(), schema=source.schema_, autoload_with=conn)
            col = table.c[source.incremental_column]
            if not col.nullable:
                return 0
            return conn.execute(select(func.count()).select_from(table).where(col.is_(None))).scalar_one()
    finally:
        engine.dispose()
