"""What one definition writes: every place a step's rows land, with the JSON path that says so.

Two steps (of one definition or of two) writing one place overwrite each other's batches, so
this list is what the overlap checks compare (spec/folder.py across a folder, `overlaps` within
one file). Names are compared case-insensitively: DuckDB, PostgreSQL (unquoted) and BigQuery
datasets ignore case, and refusing a pair that a case-sensitive store would keep apart is the
safe side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dagspec.spec.errors import json_path

if TYPE_CHECKING:
    from dagspec.spec.model import Pipeline

WORK_SCHEMA = "dagspec_work"


def work_table_name(dag_id: str, step_id: str) -> str:
    """A transform's default warehouse table. Lossy (case, '-', '.', 63 characters): the folder
    checks refuse definitions whose names meet here."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{dag_id}__{step_id}")
    return name[:63] if name[0].isalpha() or name[0] == "_" else f"_{name}"[:63]


@dataclass(frozen=True)
class Output:
    place: tuple[str, str, str, str]  # (namespace, conn_id, schema, table), lower-case: the comparison key
    what: str  # as a person reads it: "staged table raw.orders in store dagspec_store"
    loc: tuple[str | int, ...]  # where the definition says so

    @property
    def path(self) -> str:
        return json_path(self.loc)


def _out(namespace: str, conn_id: str, schema: str, table: str, what: str, loc: tuple) -> Output:
    label = {"store": "store", "warehouse": "warehouse", "bigquery": "BigQuery"}[namespace]
    return Output((namespace, conn_id.lower(), schema.lower(), table.lower()),
                  f"{what} {schema}.{table} in {label} {conn_id}", loc)


def writes(pipeline: Pipeline) -> list[Output]:
    """Every place the pipeline writes rows to, one entry per step and target."""
    store, wh = pipeline.store.conn_id, pipeline.warehouse.conn_id
    found: list[Output] = []
    for i, step in enumerate(pipeline.steps):
        at = ("steps", i)
        kind = step.kind
        if kind == "extract":
            found.append(_out("store", store, step.target.schema_, step.target.table, "staged table", (*at, "target")))
        elif kind == "transform":
            where = (*at, "target") if step.target else at
            target = step.target
            schema, table = (target.schema_, target.table) if target else (WORK_SCHEMA,
                                                                           work_table_name(pipeline.dag_id, step.id))
            found.append(_out("warehouse", wh, schema, table, "transform table", where))
        elif kind == "publish":
            if step.table is not None:
                found.append(_out("warehouse", wh, step.table.schema_, step.table.table, "published table",
                                  (*at, "table")))
            if step.export is not None:
                dest = step.export.target or step.table
                found.append(_out("store", step.export.conn_id or store, dest.schema_, dest.table, "exported table",
                                  (*at, "export")))
            if step.bigquery is not None:
                bq = step.bigquery
                found.append(_out("bigquery", bq.project or bq.conn_id, bq.dataset, bq.table, "BigQuery table",
                                  (*at, "bigquery")))
        elif kind == "score":
            if step.output.table is not None:
                t = step.output.table
                found.append(_out("warehouse", wh, t.schema_, t.table, "score table", (*at, "output", "table")))
            if step.output.export is not None:
                t = step.output.export
                found.append(_out("store", store, t.schema_, t.table, "exported scores", (*at, "output", "export")))
        quarantine = getattr(step, "quarantine", None) if kind == "validate" else None
        if quarantine is not None:
            found.append(_out("warehouse", wh, quarantine.schema_, quarantine.table, "quarantine table",
                              (*at, "quarantine")))
    return found


def overlaps(pipeline: Pipeline) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Two steps of one definition writing one place: (loc, message, fix) at the second of each pair."""
    first: dict[tuple[str, str, str, str], Output] = {}
    problems = []
    for out in writes(pipeline):
        seen = first.setdefault(out.place, out)
        if seen is not out and pipeline.steps[seen.loc[1]].id != pipeline.steps[out.loc[1]].id:  # else: a copied step
            problems.append((out.loc, f"writes {out.what}, which {seen.path} also writes",
                             "give each step its own target table"))
    return problems
