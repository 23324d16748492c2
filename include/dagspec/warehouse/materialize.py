"""Materialisations beyond replace_batch written once over a SQL connection with transactions: merge on a
key, atomic table replace, view. The sessions without a native form of them (DuckDB's) implement them
with these; PostgreSQL and BigQuery have their own.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from dagspec.sql import qualified, quote
from dagspec.warehouse.base import SchemaDrift, columns_diff
from dagspec.warehouse.batch_columns import daily_only
from dagspec.warehouse.contract import Session

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection


class TransactionalSession(Session, Protocol):
    con: Any  # runs `execute(sql, params)` with $name parameters and information_schema, as DuckDB does

    def transaction(self) -> AbstractContextManager[None]: ...


def merge_batch(session: TransactionalSession, schema: str, table: str, batch_date: date, select_sql: str,
                params: dict[str, Any], key: list[str]) -> int:
    batch_date = daily_only(batch_date, "this materialization on DuckDB")
    d = session.dialect
    target = qualified(schema, table, d)
    produced = session.columns(select_sql, params)
    _no_batch_date(produced)
    cols = [n for n, _ in produced]
    missing = [k for k in key if k not in cols]
    if missing:
        raise ValueError(f"merge key column(s) {', '.join(missing)} are not in the result")
    keys = ", ".join(quote(k, d) for k in key)
    con = session.con
    with session.transaction():
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, d)}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _dagspec_merge AS SELECT *, CAST($batch_date AS DATE) AS batch_date "
                    f"FROM ({select_sql}) AS _dagspec_src", {**params, "batch_date": batch_date})
        existing = session.table_columns(schema, table)
        wanted = produced + [("batch_date", "DATE")]
        if existing is None:
            con.execute(f"CREATE TABLE {target} AS SELECT * FROM _dagspec_merge LIMIT 0")
        elif columns_diff(existing, wanted):
            raise SchemaDrift(f"{schema}.{table}", columns_diff(existing, wanted))
        dupes = con.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM _dagspec_merge").fetchone()[0]
        if dupes:
            raise ValueError(f"the result has {dupes} duplicate row(s) on the merge key ({', '.join(key)})")
        # Delete-then-insert on the key is MERGE's outcome, and it keeps the target's column order.
        con.execute(f"DELETE FROM {target} WHERE ({keys}) IN (SELECT ({keys}) FROM _dagspec_merge)")
        con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM _dagspec_merge")
        con.execute("DROP TABLE _dagspec_merge")
        rows = con.execute(f"SELECT count(*) FROM {target} WHERE batch_date = $b", {"b": batch_date}).fetchone()[0]
    return rows


def replace_table(session: TransactionalSession, schema: str, table: str, batch_date: date, select_sql: str,
                  params: dict[str, Any]) -> int:
    batch_date = daily_only(batch_date, "this materialization on DuckDB")
    d = session.dialect
    target = qualified(schema, table, d)
    _no_batch_date(session.columns(select_sql, params))
    con = session.con
    with session.transaction():
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, d)}")
        if _kind(con, schema, table) == "VIEW":
            con.execute(f"DROP VIEW {target}")
        con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT *, CAST($batch_date AS DATE) AS batch_date "
                    f"FROM ({select_sql}) AS _dagspec_src", {**params, "batch_date": batch_date})
        rows = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
    return rows


def create_view(session: TransactionalSession, schema: str, table: str, select_sql: str) -> None:
    d = session.dialect
    target = qualified(schema, table, d)
    con = session.con
    with session.transaction():
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema, d)}")
        if _kind(con, schema, table) == "BASE TABLE":
            con.execute(f"DROP TABLE {target}")
        con.execute(f"CREATE OR REPLACE VIEW {target} AS {select_sql}")


def relation(session: Session, schema: str, table: str) -> str:
    """A persistent name for a whole warehouse table (what a view may reference)."""
    return qualified(schema, table, session.dialect)


def _kind(con: DuckDBPyConnection, schema: str, table: str) -> str | None:
    row = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                      [schema, table]).fetchone()
    return row[0] if row else None


def _no_batch_date(produced: list[tuple[str, str]]) -> None:
    if any(n == "batch_date" for n, _ in produced):
        raise ValueError("the query returns a column named batch_date; dagspec adds it: rename or drop yours")
