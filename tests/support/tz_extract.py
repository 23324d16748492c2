"""Run by test_runtime in a subprocess under a given TZ: extract each source case, print the staged values.

argv[1]: JSON {case_name: [connection fields, source, table]}; argv[2]: the store's folder (DAGSPEC_HOME/store).
Prints one JSON object: case -> batch_date -> {"schema": [...], "rows": [...]} (values as repr, so any difference
shows), and "warehouse": the rows a transform in the embedded DuckDB warehouse made of the first case (local
day and hour of the instants, which a session in the host's zone would shift).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
from dagspec.store import Store


def main() -> None:
    cases = json.loads(sys.argv[1])
    store = Store(sys.argv[2])  # the embedded default store of DAGSPEC_HOME
    out = {}
    for name, (conn, source, table) in cases.items():
        info = ConnectionInfo(**conn)
        pipeline = Pipeline.model_validate({
            "dag_id": "ds_tz_probe", "start_date": "2025-01-01", "batch_days": 2,
            "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": info.conn_id, **source},
                       "chunk_rows": 1000, "target": {"schema": "raw", "table": table}}]})
        run_step(pipeline, "extract", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC),
                 resolver=lambda conn_id, info=info: info if conn_id == info.conn_id else env_resolver(conn_id))
        staged = {}
        for day in store.batch_dates("raw", table):
            data = store.dataset("raw", table, [day]).to_table()
            rows = sorted(data.to_pylist(), key=lambda r: r["id"])
            staged[day.isoformat()] = {"schema": [f"{f.name}: {f.type}" for f in data.schema],
                                       "rows": [{k: repr(v) for k, v in r.items()} for r in rows]}
        out[name] = staged
    out["warehouse"] = _transform(next(iter(cases.values())))
    print(json.dumps(out))


TRANSFORM = """SELECT id, ts, date_trunc('day', ts) AS day_start, CAST(ts AS DATE) AS day, hour(ts) AS hour,
    ts >= :from_date AS after_start FROM {{ ref('extract') }}"""


def _transform(case) -> list[dict]:
    import tempfile
    from pathlib import Path

    import duckdb

    from dagspec.paths import data_home

    conn, source, table = case
    info = ConnectionInfo(**conn)
    sql = Path(tempfile.mkdtemp()) / "tz.sql"
    sql.write_text(TRANSFORM)
    os.environ["DAGSPEC_SQL_DIR"] = str(sql.parent)
    pipeline = Pipeline.model_validate({
        "dag_id": "ds_tz_probe", "start_date": "2025-01-01", "batch_days": 2,
        "steps": [{"id": "extract", "kind": "extract", "source": {"conn_id": info.conn_id, **source},
                   "target": {"schema": "raw", "table": table}},
                  {"id": "tz", "kind": "transform", "sql": "tz.sql", "inputs": ["extract"],
                   "target": {"schema": "analytics", "table": "tz"}}]})
    run_step(pipeline, "tz", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 4, tzinfo=UTC),
             resolver=lambda conn_id: info if conn_id == info.conn_id else env_resolver(conn_id))
    con = duckdb.connect(str(data_home() / "warehouse.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")  # how the test reads it back, not how dagspec wrote it
        rows = con.execute("SELECT * FROM analytics.tz ORDER BY id").fetch_arrow_table().to_pylist()
    finally:
        con.close()
    return [{k: repr(v) for k, v in r.items()} for r in rows]


if __name__ == "__main__":
    main()
