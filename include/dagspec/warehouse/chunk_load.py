"""A chunk of batches into one table in one DELETE and one INSERT ... SELECT (DuckDB and PostgreSQL).

Replacing the batches one by one costs a column lookup, a delete and an insert per batch; for a chunk of
90 daily partitions that is most of a publish. The rows and the table are the same either way: each part's
rows get their own batch's columns, the batches the chunk replaces are deleted by their keys, and a
snapshot's prune keeps the same greatest batches whether it runs after every batch or once at the end.
Every value (the batch keys included) is bound, never formatted into the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dagspec.partitions import Key, as_key
from dagspec.warehouse.base import prune_sql
from dagspec.warehouse.batch_columns import BatchColumns


class ChunkLoading(Protocol):
    """A session whose `loads_chunks` is true (DuckDB's and PostgreSQL's)."""

    def replace_batches(
        self,
        schema: str,
        table: str,
        parts: Sequence[tuple[Key, str]],
        params: dict[str, Any],
        keep: int | None = None,
        after: Sequence[str] = (),
    ) -> dict[Key, int]:
        """replace_batch for every (batch key, SELECT) part at once; returns each batch's rows."""


@dataclass(frozen=True)
class ChunkSql:
    """The statements of one chunk load, written with the driver's parameter marks."""

    source: str  # the parts' own rows, one after the other, without the added columns
    rows: str  # the rows to insert: each part's rows with its batch's columns
    delete: str
    count: str  # (replace_by value, rows) of the chunk's batches once loaded
    params: dict[str, Any]  # for `rows`: the parts' parameters and every batch's added columns
    keys: dict[str, Any]  # for `delete` and `count`: every batch's key (DuckDB refuses parameters a statement lacks)
    by: str  # the column the batches are replaced by


def chunk_sql(target: str, parts: Sequence[tuple[Key, str]], params: dict[str, Any], mark: Callable[[str], str]) -> ChunkSql:
    keys = [BatchColumns.of(key) for key, _ in parts]
    grains = {k.replace_by for k in keys}
    if len(grains) != 1:
        raise ValueError(f"a chunk mixes daily and sub-daily batches ({', '.join(sorted(grains))}); load them apart")
    by = grains.pop()
    bound = dict(params)
    selects, marks = [], []
    for i, ((_, sql), added) in enumerate(zip(parts, keys, strict=True)):
        bound.update({f"{name}_{i}": value for name, value in added.params().items()})
        selects.append(f"SELECT *, {added.select(lambda n, i=i: mark(f'{n}_{i}'))} FROM ({sql}) AS _dagspec_src{i}")
        marks.append(mark(f"{by}_{i}"))
    keyed = ", ".join(marks)
    return ChunkSql(
        source=" UNION ALL ".join(f"SELECT * FROM ({sql}) AS _dagspec_part{i}" for i, (_, sql) in enumerate(parts)),
        rows=" UNION ALL ".join(selects),
        delete=f"DELETE FROM {target} WHERE {by} IN ({keyed})",
        count=f"SELECT {by}, count(*) FROM {target} WHERE {by} IN ({keyed}) GROUP BY {by}",
        params=bound,
        keys={f"{by}_{i}": added.params()[by] for i, added in enumerate(keys)},
        by=by,
    )


def load_chunk(execute: Callable[[str, dict[str, Any] | None], list[tuple]], target: str, chunk: ChunkSql,
               insert: str, keep: int | None, after: Sequence[str]) -> list[tuple]:
    """In the caller's transaction: the chunk's batches deleted, its rows inserted (``insert``: the warehouse's own
    INSERT of ``chunk.rows``), counted, pruned to the ``keep`` greatest batches, then the post-load statements.
    Counted before the prune, as each batch's own load reports its rows before later ones prune it."""
    execute(chunk.delete, chunk.keys)
    execute(insert, chunk.params)
    counted = execute(chunk.count, chunk.keys)
    if keep is not None:
        execute(prune_sql(target, keep, chunk.by), None)
    for statement in after:
        execute(statement, None)
    return counted


def counts_by_key(parts: Sequence[tuple[Key, str]], by: str, rows: list[tuple]) -> dict[Key, int]:
    """Each batch's loaded rows from the grouped count (a batch that got no rows has none)."""
    found = {value: n for value, n in rows}
    return {key: found.get(BatchColumns.of(key).params()[by], 0) for key, _ in parts}


def unique_statements(after: Sequence[Sequence[str]]) -> list[str]:
    """Every batch's post-load statements, each once, in order: they change no rows (validate checks that), so
    ANALYZE or a GRANT rendered the same for 90 batches need not run 90 times in the one transaction."""
    seen: dict[str, None] = {}
    for statements in after:
        seen.update(dict.fromkeys(statements))
    return list(seen)


def first_key(parts: Sequence[tuple[Key, str]]) -> BatchColumns:
    return BatchColumns.of(as_key(parts[0][0]))
