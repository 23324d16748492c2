"""Publish: the batch to every target of the step, each replacing exactly that batch.

Targets: a warehouse table (delete + insert in one transaction), files in the store or another
store connection (Parquet/CSV, swapped in whole), BigQuery (Parquet load job + one MERGE), a Google
Sheets worksheet (cleared, then rewritten: the batch, the whole table, or every batch appended).
Validation ran before this step, so a failed 'fail' expectation never reaches any of them, and a
staged batch is read only in the version the validate steps before this one checked (RunContext.staged
refuses any other).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, cast

from dagspec.alerts_runs import wants
from dagspec.errors import disk_full, first_line
from dagspec.spec.model import PublishStep
from dagspec.stages.context import RunContext, StepFailed

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from dagspec.partitions import Key
    from dagspec.warehouse.contract import Session
    from dagspec.warehouse.materialize import TransactionalSession
    from dagspec.windows import Batch


def run_publish(ctx: RunContext, step: PublishStep) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with ctx.warehouse.session() as session, chunk_transaction(ctx, step, session):
        loaded, exposed = _load_chunk(ctx, step, session) if _loads_chunk(ctx, step, session) else (None, [])
        for i, batch in enumerate(ctx.batches):
            day = batch.key.label
            done: dict[str, int] = {}
            rel = exposed[i] if exposed else ctx.expose(session, step.input, batch)

            def reader(rel: str = rel) -> pa.RecordBatchReader:
                return session.arrow(f"SELECT * FROM {rel}", {})

            if loaded is not None:
                done["table"] = loaded[batch.key]
            elif step.table is not None:
                after = post_load_sql(ctx, step, batch, session.dialect)
                try:
                    count = session.replace_batch(step.table.schema_, step.table.table, batch.key,
                                                  f"SELECT * FROM {rel}", {}, keep=step.table.keep_batches, after=after)
                except Exception as exc:
                    where = f"publish {step.id}: warehouse connection {ctx.pipeline.warehouse.conn_id!r}: " \
                            f"{step.table.qualified} batch_date={day}"
                    _no_room(exc, where)
                    if after:  # the load and its post-load SQL stand or fall together: say which statement it may be
                        raise StepFailed(f"{where}: {first_line(exc)}; nothing of this batch was published "
                                         f"(the load and its {len(after)} post_sql statement(s) run as one)") from None
                    raise
                ctx.log.info("publish %s: batch_date=%s rows=%d -> table %s%s", step.id, day, count, step.table.qualified,
                             f" (then {len(after)} post_sql statement(s))" if after else "")
                done["table"] = count
            if step.export is not None:
                done["export"] = _export(ctx, step, batch, reader())
            if step.bigquery is not None:
                done["bigquery"] = _bigquery(ctx, step, batch, reader())
            if step.sheet is not None:
                whole = step.sheet.mode == "table"
                done["sheet"] = _sheet(ctx, step, batch, _published(session, step) if whole else reader())
            if step.email is not None:  # last: a message cannot be taken back if another target failed
                done["email"] = _email(ctx, step, batch, reader())
            rows[day] = next(iter(done.values())) if len(done) == 1 else done
            if wants(ctx.pipeline, "success"):  # the run's success alert reads it (in Airflow, outside this task)
                ctx.store.record_published(ctx.pipeline.dag_id, step.id, batch.key, done)
    return rows


def _loads_chunk(ctx: RunContext, step: PublishStep, session: Session) -> bool:
    return step.table is not None and len(ctx.batches) > 1 and session.loads_chunks


def _load_chunk(ctx: RunContext, step: PublishStep, session: Session) -> tuple[dict[Key, int], list[str]]:
    """The chunk's table rows in one DELETE and one INSERT (warehouse/chunk_load.py). Each batch's input stays
    exposed under its own name, returned with the counts, so the other targets read it without exposing it again."""
    from dagspec.warehouse.chunk_load import ChunkLoading, unique_statements

    table = step.table
    exposed = [ctx.expose(session, step.input, b, f"__ref_{step.input}_{i}") for i, b in enumerate(ctx.batches)]
    parts = [(b.key, f"SELECT * FROM {rel}") for b, rel in zip(ctx.batches, exposed, strict=True)]
    after = unique_statements([post_load_sql(ctx, step, b, session.dialect) for b in ctx.batches])
    first, last = ctx.batches[0].key.label, ctx.batches[-1].key.label
    try:
        counts = cast("ChunkLoading", session).replace_batches(table.schema_, table.table, parts, {},
                                                               keep=table.keep_batches, after=after)
    except Exception as exc:
        where = f"publish {step.id}: warehouse connection {ctx.pipeline.warehouse.conn_id!r}: " \
                f"{table.qualified} batch_date={first}..{last}"
        _no_room(exc, where)
        if after:
            raise StepFailed(f"{where}: {first_line(exc)}; nothing of these {len(parts)} batches was published "
                             f"(the load and its {len(after)} post_sql statement(s) run as one)") from None
        raise
    for batch in ctx.batches:
        ctx.log.info("publish %s: batch_date=%s rows=%d -> table %s", step.id, batch.key.label, counts[batch.key],
                     table.qualified)
    ctx.log.info("publish %s: %d batches (%s..%s) in one delete + insert%s", step.id, len(parts), first, last,
                 f" (then {len(after)} post_sql statement(s))" if after else "")
    return counts, exposed


def chunk_transaction(ctx: RunContext, step: PublishStep, session: Session) -> AbstractContextManager[None]:
    """A run of several batches publishes its table rows in one transaction (each batch's delete + insert inside
    it): every partition of the chunk is in, or none is. Files, sheets and e-mails are not transactional; they
    are written batch by batch as before, and a re-run replaces them."""
    if step.table is not None and len(ctx.batches) > 1 and session.dialect in ("duckdb", "postgres"):
        return cast("TransactionalSession", session).transaction()
    return nullcontext()


def post_load_sql(ctx: RunContext, step: PublishStep, batch: Batch, dialect: str) -> list[str]:
    """The step's post_sql rendered for this batch, each checked again (the loader does not parse SQL)."""
    from dagspec.sql import post_load_problem, qualified, render_window
    from dagspec.warehouse.redshift_sql import redshift_problem

    table = step.table
    this = qualified(table.schema_, table.table, dialect)
    out = []
    for j, text in enumerate(table.post_sql):
        rendered = render_window(text, batch.from_at, batch.to_at, ctx.pipeline.params, batch_date=batch.batch_date,
                                 this=this)
        refused = post_load_problem(rendered) or (redshift_problem(rendered) if dialect == "redshift" else None)
        if refused:
            raise StepFailed(f"publish {step.id}: table.post_sql[{j}]: {refused}")
        ctx.log.debug("publish %s: post_sql[%d]: %s", step.id, j, rendered)
        out.append(rendered)
    return out


def _no_room(exc: Exception, where: str) -> None:
    """A full disk under the target is named as that target's, with its cause (else the caller re-raises)."""
    if disk_full(exc):
        raise StepFailed(f"{where}: {first_line(exc)}; the previous batch is unchanged (fix: free space there)") from None


def _export(ctx: RunContext, step: PublishStep, batch: Batch, reader: Callable[[], pa.RecordBatchReader]) -> int:
    from dagspec.publish.files import export_partition
    from dagspec.store import Store

    dest = step.export.target or step.table
    store = Store.from_connection(ctx.resolver(step.export.conn_id)) if step.export.conn_id else ctx.store
    try:
        part = export_partition(store, step.export.format, dest.schema_, dest.table, batch.key,
                                reader.schema, reader, escape_formulas=step.export.csv_formulas == "escape")
    except Exception as exc:
        _no_room(exc, f"publish {step.id}: store connection {step.export.conn_id or ctx.pipeline.store.conn_id!r}: "
                      f"export {dest.qualified} batch_date={batch.key}")
        raise
    ctx.log.info("publish %s: batch_date=%s rows=%d -> %s (%s)", step.id, batch.key, part.rows, part.path,
                 step.export.format)
    return part.rows


def _bigquery(ctx: RunContext, step: PublishStep, batch: Batch, reader: Callable[[], pa.RecordBatchReader]) -> int:
    from dagspec.gcp import bigquery_client, project
    from dagspec.publish.bigquery import publish_batch

    target = step.bigquery
    info = ctx.resolver(target.conn_id)
    table_id = f"{project(info, target.project)}.{target.dataset}.{target.table}"
    client = bigquery_client(info, target.project)
    try:
        count = publish_batch(client, table_id, batch.batch_date, reader.schema, reader, target.unique_key)
    except ValueError:
        raise
    except Exception as exc:
        raise StepFailed(info.scrub(f"publish {step.id}: BigQuery {table_id} via connection {info.conn_id!r}: "
                                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")) from exc
    finally:
        client.close()  # its HTTP pool, with the step
    ctx.log.info("publish %s: batch_date=%s rows=%d -> BigQuery %s (%s)", step.id, batch.key, count, table_id,
                 "merge on " + ", ".join(target.unique_key) if target.unique_key else "partition replaced")
    return count


def _in_stable_order(table: pa.Table) -> pa.Table:
    """Oldest batch first, then by every plain column, so a re-run writes the same cells in the same places."""
    import pyarrow as pa

    keys = [(n, "ascending") for n, t in zip(table.column_names, table.schema.types)
            if not pa.types.is_nested(t)]
    keys.sort(key=lambda k: k[0] != "batch_date")
    return table.sort_by(keys)


def _published(session: Session, step: PublishStep) -> pa.RecordBatchReader:
    """The whole published table (just loaded, in this session), oldest batch first."""
    from dagspec.sql import qualified

    table = qualified(step.table.schema_, step.table.table, session.dialect)
    return session.arrow(f"SELECT * FROM {table} ORDER BY batch_date", {})


def _sheet(ctx: RunContext, step: PublishStep, batch: Batch, reader: pa.RecordBatchReader) -> int:
    from dagspec.publish.sheets import publish_sheet

    target = step.sheet
    info = ctx.resolver(target.conn_id)
    from dagspec.publish import read_at_most

    table = read_at_most(reader, target.max_rows)  # publish_sheet refuses a table past max_rows
    if target.mode == "table" and table.num_rows <= target.max_rows:
        table = _in_stable_order(table)
    count = publish_sheet(info, target.spreadsheet_id, target.worksheet, table, target.max_rows,
                          append_for=batch.batch_date if target.mode == "append" else None)
    ctx.log.info("publish %s: batch_date=%s rows=%d -> Google Sheets %s / %s (%s)", step.id, batch.key, count,
                 target.spreadsheet_id, target.worksheet, target.mode)
    return count


def _email(ctx: RunContext, step: PublishStep, batch: Batch, reader: pa.RecordBatchReader) -> int:
    from dagspec.publish.email_report import send_report
    from dagspec.sql import render_window

    target = step.email
    info = ctx.resolver(target.smtp_conn_id)
    try:
        subject = render_window(target.subject, batch.from_at, batch.to_at, ctx.pipeline.params,
                                batch_date=batch.batch_date, dag_id=ctx.pipeline.dag_id)
    except Exception as exc:
        raise StepFailed(f"publish {step.id}: email.subject does not render: {type(exc).__name__}: {exc}") from None
    try:
        count = send_report(info, target, subject, f"{ctx.pipeline.dag_id}_{step.input}_{batch.key}", reader)
    except ValueError:
        raise
    except Exception as exc:
        raise StepFailed(info.scrub(f"publish {step.id}: report e-mail via connection {info.conn_id!r}: "
                                    f"{type(exc).__name__}: {first_line(exc)}")) from None
    ctx.log.info("publish %s: batch_date=%s rows=%d -> e-mail to %d address(es) (%s)", step.id, batch.key,
                 count, len(target.to), target.format)
    return count
