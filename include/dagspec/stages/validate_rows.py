"""The rows a validate step sets aside: failing rows into the quarantine table and, with on_fail 'drop_rows',
the passing rows into the input's `__passed` table, which is what the steps after the check read.

Both are selected where the batch was checked (local DuckDB, the DuckDB warehouse, or inside PostgreSQL or
BigQuery by one statement) by the SQL evaluator's own predicates, so a row is dropped exactly when the
quarantine holds it for a dropping check, and the two never overlap. Each write replaces that batch
atomically (a store partition swapped in whole, a warehouse batch deleted and inserted in one transaction),
so a re-run of the date leaves the same rows, once.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagspec.spec.model import TableRef, ValidateStep
from dagspec.spec.suites import Check
from dagspec.stages.context import RunContext
from dagspec.windows import Batch

if TYPE_CHECKING:
    import pyarrow as pa

    from dagspec.checks.sql_engine import Evaluator
    from dagspec.warehouse.contract import Session

CHUNK_ROWS = 50_000  # fixed-size Arrow batches: the same rows give the same Parquet bytes on a re-run


def label(check: Check) -> str:
    """How the quarantine's failed_expectations column and the counts name a check."""
    col = check.kwargs.get("column") or ",".join(check.kwargs.get("column_list") or [])
    return f"{check.type}({col})"


def dropping(ev: Evaluator, checked: list[tuple[Check, dict]]) -> list[tuple[Check, str, list]]:
    """The failed 'fail' checks that name their failing rows: (check, predicate, its parameters)."""
    found = []
    for c, r in checked:
        if c.severity != "fail" or r["success"] or r["exception_info"]["raised_exception"]:
            continue
        got = ev.unexpected_predicate(c)
        if got is not None:
            found.append((c, *got))
    return found


@dataclass
class SetAside:
    """Given to the first pass over the input's batch; holds what it put aside (counts for the report)."""

    step: ValidateStep
    batch: Batch
    passed: TableRef | None  # where the passing rows go (on_fail 'drop_rows'), else None
    staged: bool  # the passing rows are a store partition (the input is an extract), else a warehouse table
    rows: int = 0
    dropped: int = 0
    dropped_by: dict[str, int] = field(default_factory=dict)  # check label -> its failing rows
    exceeded: bool = False  # more rows than max_dropped would go: nothing was passed on
    passed_digest: str | None = None  # the passing rows partition's version (staged)
    staged_from: TableRef | None = None  # the staged input, whose Arrow types the passing rows keep

    def take(self, ctx: RunContext, ev: Evaluator, checked: list[tuple[Check, dict]], session: Session | None
             ) -> None:
        if self.step.quarantine is not None:
            got = ev.failing_rows_sql(checked)
            sql, params = got if got else (f"SELECT *, CAST(NULL AS VARCHAR) AS failed_expectations FROM "
                                           f"{ev.relation} WHERE FALSE", [])
            count = write_rows(ctx, ev, sql, params, session, self.step.quarantine, self.batch)
            ctx.log.info("validate %s: %d failing row(s) -> quarantine %s (batch_date=%s)%s", self.step.id, count,
                         self.step.quarantine.qualified, self.batch.key, _where(ev))
        if self.passed is None:
            return
        drops = dropping(ev, checked)
        ids = {c.index for c, _, _ in drops}
        self.dropped_by = {label(c): _unexpected(r) for c, r in checked if c.index in ids}
        where = " OR ".join(f"({pred})" for _, pred, _ in drops) or "FALSE"
        params = [v for _, _, p in drops for v in p]
        self.rows, self.dropped = ev.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {where}) FROM {ev.relation}", params).fetchone()
        limit = self.step.max_dropped
        if limit is not None and self.dropped > (limit * self.rows if isinstance(limit, float) else limit):
            self.exceeded = True
            return
        # NULL (a comparison with a NULL in a value set) is not a failure: the row passes, as it is not quarantined.
        sql = f"SELECT * FROM {ev.relation} WHERE NOT coalesce({where}, FALSE)"
        if self.staged:
            reader = ev.con.execute(sql, params).fetch_record_batch(CHUNK_ROWS)
            if self.staged_from is not None:
                like = ctx.store.dataset(self.staged_from.schema_, self.staged_from.table, [self.batch.key]).schema
                reader = keep_dictionaries(reader, like)
            part = ctx.store.write_partition(self.passed.schema_, self.passed.table, self.batch.key,
                                             reader.schema, reader)
            self.passed_digest = part.digest
        else:
            write_rows(ctx, ev, sql, params, session, self.passed, self.batch)
        ctx.log.info("validate %s: %d of %d row(s) passed -> %s (batch_date=%s)%s", self.step.id,
                     self.rows - self.dropped, self.rows, self.passed.qualified, self.batch.key, _where(ev))

    def counts(self) -> dict[str, Any]:
        return {"rows_checked": self.rows, "rows_passed": self.rows - self.dropped, "rows_dropped": self.dropped,
                "dropped_by": self.dropped_by, "max_dropped": self.step.max_dropped,
                "passed_table": self.passed.qualified if self.passed else None}

    def limit_message(self) -> str:
        limit = self.step.max_dropped
        share = f"{limit:.0%} of the batch" if isinstance(limit, float) else f"{limit} row(s)"
        return (f"{self.dropped} of {self.rows} row(s) failed a dropping check, above max_dropped ({share}): "
                "nothing was passed on")


def keep_dictionaries(reader: pa.RecordBatchReader, like: pa.Schema) -> pa.RecordBatchReader:
    """DuckDB hands a dictionary column back as plain values: cast those back, so the passing rows have the
    staged batch's schema (a reader of `<table>__passed` sees the same types as one of `<table>`)."""
    import pyarrow as pa

    wanted = {f.name: f.type for f in like if pa.types.is_dictionary(f.type)}
    fields = [pa.field(f.name, wanted.get(f.name, f.type), f.nullable) for f in reader.schema]
    if not any(f.name in wanted for f in reader.schema):
        return reader
    schema = pa.schema(fields, metadata=reader.schema.metadata)
    return pa.RecordBatchReader.from_batches(schema, (b.cast(schema) for b in reader))


def _unexpected(result: dict) -> int:
    return int((result.get("result") or {}).get("unexpected_count") or 0)


def _where(ev: Evaluator) -> str:
    from dagspec.checks.warehouse_sql import BatchConnection

    return f", selected inside {ev.con.warehouse}" if isinstance(ev.con, BatchConnection) else ""


def write_rows(ctx: RunContext, ev: Evaluator, sql: str, params: list, session: Session | None, target: TableRef,
               batch: Batch) -> int:
    """The query's rows (DuckDB SQL over the checked relation) replace this batch in a warehouse table."""
    from dagspec.checks.warehouse_sql import BatchConnection
    from dagspec.sql import quote

    if isinstance(ev.con, BatchConnection):
        # Checked in the warehouse: the rows go from the batch to the table by one query there.
        select, values = ev.con.translate(sql, params)
        return session.replace_batch(target.schema_, target.table, batch.key, select, values)
    with ExitStack() as stack:
        if session is None:
            session = stack.enter_context(ctx.warehouse.session())
        if session.dialect == "duckdb" and session.con is ev.con:
            # Same DuckDB connection: an open result would be cut off by the write's own statements, so the rows
            # go to a temporary table first (DuckDB spills it to disk; it is not held in Python's memory).
            rel = quote(f"__dagspec_{target.table}", "duckdb")
            ev.con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS {sql}", params)
            stack.callback(ev.con.execute, f"DROP TABLE IF EXISTS {rel}")
        else:
            rel = session.expose(f"__{target.table}", ev.con.execute(sql, params).fetch_record_batch(CHUNK_ROWS))
        return session.replace_batch(target.schema_, target.table, batch.key, f"SELECT * FROM {rel}", {})


def clear_passed(ctx: RunContext, table: TableRef, batch: Batch) -> None:
    """A stopped batch leaves no passing rows in a warehouse table for a later reader to take for checked ones
    (a staged partition needs nothing: its check record says the check failed, and readers refuse it)."""
    with ctx.warehouse.session() as session:
        if session.table_columns(table.schema_, table.table) is None:
            return
        rel = session.expose_batch("__passed_cleared", table.schema_, table.table, batch.key)
        session.replace_batch(table.schema_, table.table, batch.key, f"SELECT * FROM {rel} WHERE FALSE", {})
