"""Every output of a step as an Airflow Asset, so another DAG can be scheduled on it.

URIs name connections by id, never by host or secret, and are computed from the definition alone
(no connection lookup at DAG parse time):
  dagspec-warehouse://<warehouse conn_id>/<schema>/<table>   a published table or a transform's table
  dagspec-store://<store conn_id>/<schema>/<table>           exported partitions
  bigquery://<project or conn_id>/<dataset>/<table>
  gsheets://<spreadsheet id>/<worksheet>
"""

from __future__ import annotations

import re
from urllib.parse import quote

from dagspec.spec.model import Pipeline, PublishStep, StepBase, TransformStep

# Same as dagspec.stages.context (a test checks it): importing that module here would pull pyarrow into
# every DAG parse.
WORK_SCHEMA = "dagspec_work"


def work_table_name(dag_id: str, step_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{dag_id}__{step_id}")
    return name[:63] if name[0].isalpha() or name[0] == "_" else f"_{name}"[:63]


def asset_uris(pipeline: Pipeline, step: StepBase) -> list[str]:
    wh = pipeline.warehouse.conn_id
    if isinstance(step, TransformStep):
        target = step.target
        schema, table = (target.schema_, target.table) if target else (WORK_SCHEMA, work_table_name(pipeline.dag_id,
                                                                                                      step.id))
        return [f"dagspec-warehouse://{wh}/{schema}/{table}"]
    if not isinstance(step, PublishStep):
        return []
    uris = []
    if step.table is not None:
        uris.append(f"dagspec-warehouse://{wh}/{step.table.schema_}/{step.table.table}")
    if step.export is not None:
        dest = step.export.target or step.table
        uris.append(f"dagspec-store://{step.export.conn_id or pipeline.store.conn_id}/{dest.schema_}/{dest.table}")
    if step.bigquery is not None:
        bq = step.bigquery
        uris.append(f"bigquery://{bq.project or bq.conn_id}/{bq.dataset}/{bq.table}")
    if step.sheet is not None:
        uris.append(f"gsheets://{step.sheet.spreadsheet_id}/{quote(step.sheet.worksheet, safe='')}")
    return uris


def outlets(pipeline: Pipeline, step: StepBase) -> list:
    uris = asset_uris(pipeline, step)
    if not uris:
        return []
    from airflow.sdk import Asset

    return [Asset(uri=u) for u in uris]
