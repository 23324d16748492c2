"""Run by test_runtime in a subprocess under a given TZ: extract each source case, print the staged values.

argv[1]: JSON {case_name: [connection fields, source, table]}; argv[2]: the store's DAGSPEC_HOME.
Prints one JSON object: case -> {"schema": [...], "rows": [...]} (values as text, so any difference shows).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.runner import run_step
from dagspec.spec.model import Pipeline
from dagspec.store import Store

UTC = timezone.utc


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
                 resolver=lambda conn_id: info if conn_id == info.conn_id else env_resolver(conn_id))
        staged = {}
        for day in store.batch_dates("raw", table):
            data = store.dataset("raw", table, [day]).to_table()
            rows = sorted(data.to_pylist(), key=lambda r: r["id"])
            staged[day.isoformat()] = {"schema": [f"{f.name}: {f.type}" for f in data.schema],
                                       "rows": [{k: repr(v) for k, v in r.items()} for r in rows]}
        out[name] = staged
    print(json.dumps(out))


if __name__ == "__main__":
    main()
