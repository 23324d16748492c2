"""The bundled examples as the tests' Airflow stacks need them: ending on the fixed sample's last day.

The bundled orders and model definitions have no end_date, so a fresh `make up` runs them on its own over
yesterday's data. A test stack serves the fixed 2025 sample instead (DAGSPEC_SAMPLE_END), where those
scheduled runs would find no orders and fail, competing with the runs the test asks for: its copies end with
that sample, as the examples did before they ran by themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXED_END = "2025-12-31"
# The examples that run on their own in the demo; customers_snapshot always did (its data has no dates).
SELF_RUNNING = {"orders_daily", "orders_model", "orders_model_retrain"}


def pinned_copy(source: Path, target: Path) -> Path:
    """`source` written to `target`, with end_date FIXED_END when it is a self-running example without one."""
    data = json.loads(source.read_text())
    if data.get("dag_id") in SELF_RUNNING and not data.get("end_date"):
        data["end_date"] = FIXED_END
    target.write_text(json.dumps(data, indent=2) + "\n")
    return target
