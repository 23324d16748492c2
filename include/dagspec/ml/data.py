"""Rows for a model step, read as Arrow: a step's batches, a warehouse table, or a SQL file, for a window."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from dagspec.errors import DataNotYet, StepFailed
from dagspec.spec.ml_steps import MLData
from dagspec.spec.model import ExtractStep, Pipeline, TableRef
from dagspec.sql import qualified, quote, read_sql_file, render_window, to_dialect
from dagspec.windows import Window

if TYPE_CHECKING:
    from datetime import date

    import pyarrow.dataset as pads

    from dagspec.store import Store
    from dagspec.warehouse.contract import Session


class RunData(Protocol):
    """What reading a model step's rows needs from the run (the stages' RunContext is one)."""

    pipeline: Pipeline
    sql_root: Path

    @property
    def store(self) -> Store: ...

    def output_table(self, step_id: str) -> TableRef: ...

    def reads_from(self, step_id: str) -> TableRef: ...

    def staged(self, step_id: str, dates: list[date]) -> pads.Dataset: ...


def lookback(window: Window, days: int | None) -> Window:
    """The data window: `days` back from the end of the run's window, or the run's window itself."""
    return Window(window.end - timedelta(days=days), window.end) if days else window


def read(ctx: RunData, session: Session, data: MLData, window: Window, columns: list[str] | None,
         chunk_rows: int = 100_000) -> pa.RecordBatchReader:
    """A stream of the rows of `data` that fall in `window` (only `columns`, when given)."""
    if data.input is not None and isinstance(ctx.pipeline.step(data.input), ExtractStep):
        return _staged(ctx, data.input, window, columns, chunk_rows)
    if data.sql is not None or data.query is not None:
        raw = data.query if data.query is not None else read_sql_file(ctx.sql_root, data.sql)
        text = render_window(raw, window.start, window.end, ctx.pipeline.params)
        sql, names = to_dialect(text, read=session.dialect, write=session.dialect)
        bound = {"from_date": _naive(window.start), "to_date": _naive(window.end)}
        unknown = [n for n in names if n not in bound]
        if unknown:
            raise StepFailed(f"{data.sql_label}: unknown parameter(s) {', '.join(':' + n for n in unknown)}; "
                             "available: :from_date, :to_date")
        select = ", ".join(quote(c, session.dialect) for c in columns) if columns else "*"
        return session.arrow(f"SELECT {select} FROM ({sql}) AS _dagspec_ml", {n: bound[n] for n in names}, chunk_rows)
    table = data.table or ctx.reads_from(data.input)
    have = session.table_columns(table.schema_, table.table)
    if have is None:
        raise DataNotYet(f"warehouse table {table.qualified} does not exist yet: run the step that writes it first")
    names = [c for c, _ in have]
    wanted = columns or [c for c in names if c != "batch_date"]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise StepFailed(f"{table.qualified} has no column(s) {', '.join(missing)}; it has {', '.join(names)}")
    d = session.dialect
    select = ", ".join(quote(c, d) for c in wanted)
    if data.time_column:
        where, params = f"{quote(data.time_column, d)} >= :lo AND {quote(data.time_column, d)} < :hi", {
            "lo": _naive(window.start), "hi": _naive(window.end)}
    elif "batch_date" in names:
        where, params = "batch_date >= :lo AND batch_date < :hi", {
            "lo": window.start.date(), "hi": _end_date(window)}
    else:
        raise StepFailed(f"{table.qualified} has no batch_date column: give 'time_column' to pick the window's rows")
    sql, _ = to_dialect(f"SELECT {select} FROM {qualified(table.schema_, table.table, d)} WHERE {where}", read=d, write=d)
    return session.arrow(sql, params, chunk_rows)


def read_all(ctx: RunData, session: Session, data: MLData, window: Window, columns: list[str] | None) -> pa.Table:
    return read(ctx, session, data, window, columns).read_all()


def _staged(ctx: RunData, step_id: str, window: Window, columns: list[str] | None,
            chunk_rows: int) -> pa.RecordBatchReader:
    table = ctx.reads_from(step_id)
    dates = [d for d in ctx.store.batch_dates(table.schema_, table.table)
             if window.start.date() <= d < _end_date(window)]
    if not dates:
        raise DataNotYet(f"no staged batches of {step_id!r} ({table.qualified}) between {window.start.date()} and "
                         f"{window.end.date()}: run (or backfill) the step for those dates first")
    dataset = ctx.staged(step_id, dates)
    missing = [c for c in columns or [] if c not in dataset.schema.names]
    if missing:
        raise StepFailed(f"staged {table.qualified} has no column(s) {', '.join(missing)}")
    return dataset.scanner(columns=columns, batch_size=chunk_rows).to_reader()


def _end_date(window: Window) -> date:
    # A window ending at midnight excludes that day; one ending later includes it.
    end = window.end
    return end.date() if (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0) else end.date() + timedelta(1)


def _naive(value: object) -> object:
    return value.replace(tzinfo=None) if getattr(value, "tzinfo", None) else value


def chunks(reader: pa.RecordBatchReader, rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream into batches of at most `rows` (readers may hand out bigger or tiny ones)."""
    for batch in reader:
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)
