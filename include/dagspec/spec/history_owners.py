"""A folder-level look at history inputs: a transform that reads the history of a table no definition of the
folder publishes gets nothing but a failed first run ("the table does not exist: run the backfill"). It may be
published by another deployment or tool, so `dagspec validate` warns rather than refuses, and the loader (which
must never let one definition hide another) does not look at all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagspec.spec.errors import Problem, json_path
from dagspec.spec.model import Pipeline, TransformStep
from dagspec.spec.outputs import writes


def unpublished_history(pipelines: Mapping[str, Pipeline], also_written: Iterable[tuple[str, ...]] = ()) -> list[Problem]:
    """One warning per ``{"table": ...}`` history input that no pipeline given (file name -> Pipeline), nor
    ``also_written`` (places of definitions read elsewhere), writes to in the reader's own warehouse."""
    written = {o.place for p in pipelines.values() for o in writes(p)} | set(also_written)
    found = []
    for file, pipeline in pipelines.items():
        wh = pipeline.warehouse.conn_id.lower()
        for i, step in enumerate(pipeline.steps):
            if not isinstance(step, TransformStep):
                continue
            for j, entry in enumerate(step.history):
                table = entry.table
                if table is None or ("warehouse", wh, table.schema_.lower(), table.table.lower()) in written:
                    continue
                found.append(Problem(
                    file, json_path(("steps", i, "history", j, "table")),
                    f"no definition here publishes {table.qualified} to warehouse {pipeline.warehouse.conn_id!r}: "
                    "its first run fails until that table has rows",
                    "publish it from a definition in this folder, or check the schema and table (a table another "
                    "deployment publishes is fine: this is a warning)"))
    return found
