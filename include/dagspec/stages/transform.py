"""Transform: a SQL file rendered with the window, run inside the warehouse.

Materialisations: incremental (each batch replaces its batch, or merges on unique_key), table (the
result replaces the whole table atomically), view. Each write is one transaction where the
warehouse has them, so a failing query leaves the previous table as it was.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from dagspec.spec.history_inputs import HistoryInput
from dagspec.spec.model import ExtractStep, TransformStep
from dagspec.sql import read_sql_file, render_window, to_dialect
from dagspec.stages.context import RunContext, StepFailed
from dagspec.warehouse import materialize
from dagspec.warehouse.contract import Session

if TYPE_CHECKING:
    from collections.abc import Callable

    from dagspec.windows import Batch


def run_transform(ctx: RunContext, step: TransformStep) -> dict[str, int]:
    template = step.query if step.query is not None else read_sql_file(ctx.sql_root, step.sql)
    target = ctx.output_table(step.id)
    rows: dict[str, int] = {}
    with ctx.warehouse.session() as session:
        if step.materialization == "view":
            _create_view(ctx, step, session, template)
            return {"view": 1}
        if _set_based(ctx, step, session):
            return _run_chunk(ctx, step, session, template)
        for batch in ctx.batches:

            refs: dict[str, str] = {}
            ref = _ref_function(ctx, step, session, batch, refs)

            def history(name: str) -> str:
                entry = history_entry(step, name)
                token = f"__dagspec_history_{step.history.index(entry)}"
                refs[token] = ctx.expose_history(session, step, entry, batch)  # noqa: B023 (as ref above)
                return token

            rendered = render_window(template, batch.from_at, batch.to_at, ctx.pipeline.params,
                                     {"ref": ref, "history": history}, batch_date=batch.batch_date)
            sql, names = _transpile(ctx, step, session, rendered)
            sql = _put_refs(sql, refs)
            _refuse_unknown(step, names, batch)
            params = {n: _naive(batch.params()[n]) for n in names}
            try:
                if step.materialization == "table":
                    count = session.replace_table(target.schema_, target.table, batch.key, sql, params)
                elif step.unique_key:
                    count = session.merge_batch(target.schema_, target.table, batch.key, sql, params,
                                                step.unique_key)
                else:
                    count = session.replace_batch(target.schema_, target.table, batch.key, sql, params)
            except StepFailed:
                raise
            except Exception as exc:
                raise StepFailed(f"transform {step.id} ({step.sql_label}) failed in the warehouse, {target.qualified} is "
                                 f"unchanged: {type(exc).__name__}: {_engine_message(exc)}") from exc
            rows[batch.key.label] = count
            ctx.log.info("transform %s: batch_date=%s rows=%d -> %s (%s)", step.id, batch.key, count,
                         target.qualified, "merge" if step.unique_key else step.materialization)
    return rows


def _set_based(ctx: RunContext, step: TransformStep, session: Session) -> bool:
    """A chunk's incremental batches as one statement, where the warehouse loads chunks (DuckDB, PostgreSQL). A merge,
    a whole-table replace and history inputs (each batch reads the batches published before it) stay per batch."""
    return (len(ctx.batches) > 1 and step.materialization == "incremental" and not step.unique_key
            and not step.history and session.loads_chunks)


PARAM = "__dagspec_param_"  # a part's bound parameters are renamed to PARAM + name + _<part>: one statement holds all


def _run_chunk(ctx: RunContext, step: TransformStep, session: Session, template: str) -> dict[str, int]:
    """Every batch's SQL rendered (it may use {{ ds }}), parsed once per distinct text (once when only the bound
    window differs), and run as one INSERT of the parts' rows (warehouse/chunk_load.py): the same rows per batch
    as running them one by one."""
    from dagspec.warehouse.chunk_load import ChunkLoading

    target = ctx.output_table(step.id)
    parsed: dict[str, tuple[str, list[str]]] = {}
    parts, params = [], {}
    for i, batch in enumerate(ctx.batches):
        refs: dict[str, str] = {}
        ref = _ref_function(ctx, step, session, batch, refs, part=i)

        # history() in SQL whose step declares none: the same refusal, naming what is missing, as batch by batch
        refuse = {"history": lambda name: str(history_entry(step, name))}
        rendered = render_window(template, batch.from_at, batch.to_at, ctx.pipeline.params, {"ref": ref, **refuse},
                                 batch_date=batch.batch_date)
        if rendered not in parsed:
            parsed[rendered] = _transpile(ctx, step, session, rendered, rename=PARAM)
        sql, names = parsed[rendered]
        _refuse_unknown(step, names, batch)
        sql = _put_refs(sql, refs)
        for n in names:
            sql = re.sub(rf"\b{PARAM}{n}\b", f"{PARAM}{n}_{i}", sql)
            params[f"{PARAM}{n}_{i}"] = _naive(batch.params()[n])
        parts.append((batch.key, sql))
    try:
        counts = cast("ChunkLoading", session).replace_batches(target.schema_, target.table, parts, params)
    except StepFailed:
        raise
    except Exception as exc:
        raise StepFailed(f"transform {step.id} ({step.sql_label}) failed in the warehouse, {target.qualified} is "
                         f"unchanged: {type(exc).__name__}: {_engine_message(exc)}") from exc
    for batch in ctx.batches:
        ctx.log.info("transform %s: batch_date=%s rows=%d -> %s (incremental)", step.id, batch.key, counts[batch.key],
                     target.qualified)
    ctx.log.info("transform %s: %d batches in one statement (SQL parsed %d time(s))", step.id, len(parts), len(parsed))
    return {b.key.label: counts[b.key] for b in ctx.batches}


def _ref_function(ctx: RunContext, step: TransformStep, session: Session, batch: Batch, refs: dict[str, str],
                  part: int | None = None) -> Callable[[str], str]:
    """The SQL's ref(): one input's batch exposed in the session, a plain token in its place while sqlglot reads
    the file, the relation text kept in `refs` to go in after (so it never has to parse in the file's dialect:
    BigQuery's `project.dataset.table`). `part`: the batch's place in a chunk, whose parts are exposed side by side."""

    def ref(step_id: str) -> str:
        if step_id not in step.inputs:
            raise StepFailed(f"{step.sql_label}: ref({step_id!r}) is not in the step's inputs; add it to 'inputs'")
        token = f"__dagspec_ref_{step_id}"
        named = {} if part is None else {"name": f"__ref_{step_id}_{part}"}
        refs[token] = ctx.expose(session, step_id, batch, **named)
        return token

    return ref


def _refuse_unknown(step: TransformStep, names: list[str], batch: Batch) -> None:
    unknown = [n for n in names if n not in batch.params()]
    if unknown:
        raise StepFailed(f"{step.sql_label}: unknown parameter(s) {', '.join(':' + n for n in unknown)}; "
                         "available: :from_date, :to_date, :batch_date")


def history_entry(step: TransformStep, name: object) -> HistoryInput:
    """The step's history input the SQL names, else StepFailed listing those it has."""
    found = next((h for h in step.history if h.name == name), None)
    if found is None:
        listed = ", ".join(repr(h.name) for h in step.history) or "none"
        raise StepFailed(f"{step.sql_label}: history({str(name)[:80]!r}) is not in the step's 'history' (it has: "
                         f"{listed}); add {{\"step\": ...}} or {{\"table\": ...}} to 'history'")
    return found


def _create_view(ctx: RunContext, step: TransformStep, session: Session, template: str) -> None:
    target = ctx.output_table(step.id)

    def ref(step_id: str) -> str:
        if step_id not in step.inputs:
            raise StepFailed(f"{step.sql_label}: ref({step_id!r}) is not in the step's inputs; add it to 'inputs'")
        if isinstance(ctx.pipeline.step(step_id), ExtractStep):
            raise StepFailed(f"{step.sql_label}: a view can only read warehouse tables; {step_id!r} is staged Parquet "
                             "(make it a table or incremental transform, or read a transform's output)")
        table = ctx.output_table(step_id)
        return materialize.relation(session, table.schema_, table.table)

    refs: dict[str, str] = {}

    def token_ref(step_id: str) -> str:
        token = f"__dagspec_ref_{step_id}"
        refs[token] = ref(step_id)
        return token

    batch = ctx.batches[0]
    rendered = render_window(template, batch.from_at, batch.to_at, ctx.pipeline.params, {"ref": token_ref},
                             batch_date=batch.batch_date)
    sql, names = _transpile(ctx, step, session, rendered)
    sql = _put_refs(sql, refs)
    if names:
        raise StepFailed(f"{step.sql_label}: a view cannot hold bound parameters ({', '.join(':' + n for n in names)}); "
                         "use materialization 'incremental' or 'table' for windowed SQL")
    try:
        session.create_view(target.schema_, target.table, sql)
    except Exception as exc:
        raise StepFailed(f"transform {step.id} ({step.sql_label}): creating view {target.qualified} failed, the previous "
                         f"one is unchanged: {type(exc).__name__}: {_engine_message(exc)}") from exc
    ctx.log.info("transform %s: view %s created", step.id, target.qualified)


def _transpile(ctx: RunContext, step: TransformStep, session: Session, rendered: str,
               rename: str = "") -> tuple[str, list[str]]:
    read = step.dialect or session.dialect
    try:
        sql, names = to_dialect(rendered, read=read, write=session.dialect, rename=rename)
    except Exception as exc:
        raise StepFailed(f"{step.sql_label}: sqlglot could not read it as {read} SQL: {_engine_message(exc)}") from exc
    if read != session.dialect:
        ctx.log.info("transform %s: %s transpiled from %s to %s by sqlglot", step.id, step.sql_label, read, session.dialect)
    ctx.log.debug("transform %s: SQL sent to %s:\n%s", step.id, session.dialect, sql)
    return sql, names


def _put_refs(sql: str, refs: dict[str, str]) -> str:
    for token, relation in refs.items():
        # sqlglot may have quoted the token in the target dialect ("x", `x`); replace it with any quoting.
        sql = re.sub(rf"[\"`]?\b{re.escape(token)}\b[\"`]?", lambda _m, r=relation: r, sql)
    return sql


def _engine_message(exc: Exception) -> str:
    # The whole text: the engine's line pointer, caret and "did you mean" hints are what makes it fixable.
    return str(exc).strip()


def _naive(value: object) -> object:
    # Warehouse sessions run in UTC; naive UTC compares cleanly with both TIMESTAMP and TIMESTAMPTZ.
    return value.replace(tzinfo=None) if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) else value
