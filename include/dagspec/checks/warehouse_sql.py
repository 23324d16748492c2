"""The SQL evaluator's checks computed inside a warehouse: a DuckDB-connection-like adapter over its session.

Evaluator (sql_engine.py) writes DuckDB SQL with `?` parameters over one relation. A BatchConnection runs
each statement in the warehouse instead: sqlglot transpiles it (dagspec.sql.to_dialect), the relation becomes
the batch of the warehouse table (`WHERE batch_date = <bound date>`; `batch_start` for a sub-daily batch),
every value is bound as a query parameter (never pasted into the SQL text), and rows come back as tuples like
DuckDB's fetchone/fetchall.
BigQueryConnection computes every check this way: only aggregates and at most PARTIAL sample values leave
BigQuery; the batch itself stays there. PostgresBatchConnection is used for quarantine after GX's own SQL
engine has checked the batch in PostgreSQL: the failing rows are selected and written there by one statement.
RedshiftBatchConnection computes every check in Redshift SQL the way BigQueryConnection does.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from dagspec.checks.sql_engine import supported
from dagspec.spec.suites import Check
from dagspec.sql import quote, to_dialect
from dagspec.warehouse.batch_columns import BatchColumns

if TYPE_CHECKING:
    from dagspec.partitions import Key
    from dagspec.warehouse.bigquery import BigQuerySession
    from dagspec.warehouse.contract import Session
    from dagspec.warehouse.postgres import PostgresSession

# The FROM item the Evaluator is given; each statement gets the batch's subquery in its place.
RELATION = "__dagspec_bigquery_batch"
_DATE = "_dagspec_validate_batch_date"
_PREFIX = "_dagspec_p"
# BigQuery has no exact MEDIAN aggregate (PERCENTILE_CONT is analytic only there): GX's pandas engine runs it.
NOT_IN_BIGQUERY = {"expect_column_median_to_be_between"}
# A string bound compared with these columns is cast to the column's type (DuckDB does that implicitly).
_TEMPORAL = {"DATE", "DATETIME", "TIMESTAMP", "TIME"}


def supported_in_bigquery(check: Check) -> bool:
    return supported(check) and check.type not in NOT_IN_BIGQUERY


def runs_in(check: Check, dialect: str) -> bool:
    """The SQL evaluator computes `check` inside that warehouse (else GX's pandas engine gets its columns)."""
    return supported_in_bigquery(check) if dialect == "bigquery" else supported(check)


class _Rows:
    def __init__(self, rows: list[tuple]):
        self._rows = rows

    def fetchone(self) -> tuple | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple]:
        return list(self._rows)


class BatchConnection:
    """Stands in for a DuckDB connection in Evaluator: execute(duckdb_sql, params) runs in the warehouse."""

    relation = RELATION
    dialect: str  # sqlglot's name
    warehouse: str  # for people

    def __init__(self, session: Session, batch_sql: str, batch_date: dt.date | dt.datetime):
        """`batch_sql`: DuckDB SQL selecting the table's columns but batch_date, filtered by `$_dagspec_validate_batch_date`
        (the batch's date, or a sub-daily batch's start)."""
        self.session = session
        self.batch_date = batch_date
        self._batch = sqlglot.parse_one(f"({batch_sql})", read="duckdb")
        self.statements: list[str] = []  # the warehouse SQL run, in order (for logs and tests)
        # Empty while the statement that reads the schema is translated (it runs before any is known).
        self.column_types: dict[str, str] = {}
        select, params = self.translate(f"SELECT * FROM {RELATION}")
        self.schema = self.session.columns(select, params)  # [(name, warehouse type)]; LIMIT 0, reads no rows
        self.column_types = dict(self.schema)

    def translate(self, sql: str, params: list | tuple | None = None) -> tuple[str, dict[str, Any]]:
        """DuckDB SQL with `?` parameters -> (the warehouse's SQL with named parameters, {name: value})."""
        params = list(params or [])
        # `?` -> $_dagspec_pN at the tokenizer's positions (a `?` in a string or quoted name is not a token).
        marks = [t.start for t in sqlglot.tokenize(sql, read="duckdb") if t.token_type == TokenType.PLACEHOLDER]
        if len(marks) != len(params):
            raise ValueError(f"{len(marks)} placeholder(s) in the SQL but {len(params)} value(s)")
        for i, at in reversed(list(enumerate(marks))):
            sql = f"{sql[:at]}${_PREFIX}{i}{sql[at + 1:]}"
        values: dict[str, Any] = {f"{_PREFIX}{i}": v for i, v in enumerate(params)}
        values[_DATE] = self.batch_date
        tree = sqlglot.parse_one(sql, read="duckdb")
        for table in [t for t in tree.find_all(exp.Table) if t.name == RELATION and not t.args.get("db")]:
            batch = self._batch.copy()
            # PostgreSQL wants every subquery in FROM named: keep the query's alias or name it as the relation.
            batch.set("alias", table.args["alias"] if table.alias else exp.TableAlias(this=exp.to_identifier(RELATION)))
            table.replace(batch)
        self._adapt(tree, values)
        out, names = self._write(tree)
        unbound = [n for n in names if n not in values]
        if unbound:
            raise ValueError(f"unbound parameter(s) {', '.join(unbound)}")
        return out, {n: values[n] for n in names}

    def _adapt(self, tree: exp.Expression, values: dict[str, Any]) -> None:
        """Rewrite what the warehouse spells differently from DuckDB (in place)."""

    def _write(self, tree: exp.Expression) -> tuple[str, list[str]]:
        """The warehouse's SQL and its parameter names (through DuckDB's text: what the transpiler reads)."""
        return to_dialect(tree.sql(dialect="duckdb"), "duckdb", self.dialect)

    def _rows(self, select: str, values: dict[str, Any]) -> list[tuple]:
        raise NotImplementedError

    def execute(self, sql: str, params: list | tuple | None = None) -> _Rows:
        tree = sqlglot.parse_one(sql, read="duckdb")
        if isinstance(tree, exp.Describe):
            # Evaluator reads the batch's column names with DESCRIBE: a LIMIT 0 query's schema (no rows read).
            if tree.this == sqlglot.parse_one(f"SELECT * FROM {RELATION}", read="duckdb"):
                return _Rows([tuple(c) for c in self.schema])
            select, values = self.translate(tree.this.sql(dialect="duckdb"), params)
            return _Rows([tuple(c) for c in self.session.columns(select, values)])
        select, values = self.translate(sql, params)
        self.statements.append(select)
        return _Rows(self._rows(select, values))


class BigQueryConnection(BatchConnection):
    dialect, warehouse = "bigquery", "BigQuery"

    session: BigQuerySession

    def __init__(self, session: BigQuerySession, project: str, dataset: str, table: str, batch_date: dt.date):
        name = ".".join([exp.to_identifier(project, quoted=True).sql("duckdb"), quote(dataset, "duckdb"),
                         quote(table, "duckdb")])
        super().__init__(session, f"SELECT * EXCLUDE (batch_date) FROM {name} WHERE batch_date = ${_DATE}", batch_date)

    def _adapt(self, tree: exp.Expression, values: dict[str, Any]) -> None:
        for node in list(tree.find_all(exp.ConcatWs)):
            # concat_ws skips NULLs; BigQuery has none: ARRAY_TO_STRING omits NULL elements the same way.
            sep, *parts = node.expressions
            node.replace(exp.ArrayToString(this=exp.Array(expressions=parts), expression=sep))
        if self.column_types:
            self._cast_temporal_bounds(tree, values)

    def _cast_temporal_bounds(self, tree: exp.Expression, values: dict[str, Any]) -> None:
        for ph in list(tree.find_all(exp.Placeholder)):
            if not isinstance(values.get(ph.name), str):
                continue
            parent = ph.parent
            other = parent.this if isinstance(parent, exp.In) else (
                parent.left if parent.right is ph else parent.right) if isinstance(parent, exp.Binary) else None
            kind = self.column_types.get(other.name) if isinstance(other, exp.Column) else None
            if kind in _TEMPORAL:
                ph.replace(exp.Cast(this=ph.copy(), to=exp.DataType.build(kind, dialect="bigquery")))

    def _rows(self, select: str, values: dict[str, Any]) -> list[tuple]:
        return [tuple(r.values()) for r in self.session.query(select, values)]


class PostgresBatchConnection(BatchConnection):
    dialect, warehouse = "postgres", "PostgreSQL"

    session: PostgresSession

    def __init__(self, session: PostgresSession, schema: str, table: str, columns: list[str], batch: Key):
        """A sub-daily batch is its interval's rows (`batch_start`, bound), not its whole day's."""
        select = ", ".join(quote(c, "duckdb") for c in columns)
        by = BatchColumns.of(batch)
        super().__init__(session, f"SELECT {select} FROM {quote(schema, 'duckdb')}.{quote(table, 'duckdb')} "
                                  f"WHERE {by.replace_by} = ${_DATE}", by.params()[by.replace_by])

    def _rows(self, select: str, values: dict[str, Any]) -> list[tuple]:
        return self.session.execute(select, values)


def _concat_skipping_nulls(sep: exp.Literal, parts: list[exp.Expression]) -> exp.Expression:
    """concat_ws(sep, ...) where there is none (sqlglot writes Redshift's `||`, which a NULL part makes NULL):
    each part prefixed by the separator or dropped when NULL, then the first separator cut off."""
    joined: exp.Expression | None = None
    for part in parts:
        piece = exp.Coalesce(this=exp.DPipe(this=sep.copy(), expression=exp.paren(part.copy())),
                             expressions=[exp.Literal.string("")])
        joined = piece if joined is None else exp.DPipe(this=joined, expression=piece)
    return exp.Substring(this=joined, start=exp.Literal.number(len(sep.this) + 1))


class RedshiftBatchConnection(PostgresBatchConnection):
    """The same statements as PostgreSQL's, written by sqlglot's Redshift dialect (run through the Redshift
    session, which records each one and masks the staging keys in its errors)."""

    dialect, warehouse = "redshift", "Redshift"

    def __init__(self, session: PostgresSession, schema: str, table: str, columns: list[str], batch_date: dt.date):
        super().__init__(session, schema, table, columns, batch_date)
        # The evaluator knows text by DuckDB's name: Redshift's VARCHAR(n) and CHAR(n) are that.
        self.schema = [(n, "VARCHAR" if t.startswith(("character", "varchar", "char", "text")) else t)
                       for n, t in self.schema]

    def _adapt(self, tree: exp.Expression, values: dict[str, Any]) -> None:
        # Redshift (like PostgreSQL before 16) wants every subquery in FROM named; DuckDB does not.
        for n, sub in enumerate(s for s in list(tree.find_all(exp.Subquery)) if not s.alias):
            if isinstance(sub.parent, (exp.From, exp.Join)):
                sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_dagspec_s{n}")))
        for node in list(tree.find_all(exp.ConcatWs)):
            sep, *parts = node.expressions
            if isinstance(sep, exp.Literal) and sep.is_string and parts:
                node.replace(_concat_skipping_nulls(sep, parts))
        # A cast to text without a length: Redshift's widest VARCHAR, spelled as its own tables' text columns are.
        for cast in list(tree.find_all(exp.Cast)):
            if cast.to.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT) and not cast.to.expressions:
                cast.set("to", exp.DataType.build("VARCHAR(65535)", dialect="redshift"))
        # `(a, b) IN (SELECT (a, b) ...)`: DuckDB's one row-valued column is two columns here.
        for select in list(tree.find_all(exp.Select)):
            if len(select.expressions) == 1 and isinstance(select.expressions[0], exp.Tuple):
                select.set("expressions", list(select.expressions[0].expressions))

    def _write(self, tree: exp.Expression) -> tuple[str, list[str]]:
        # Written straight from the adapted tree: DuckDB's text would drop the VARCHAR length set above.
        return tree.sql(dialect=self.dialect), sorted({p.name for p in tree.find_all(exp.Placeholder) if p.name})
