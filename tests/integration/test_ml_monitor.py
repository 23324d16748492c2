"""The monitor step on the sample orders, against the real MLflow server: a scored batch's prediction drift,
row volume, feature nulls and ranges and, once labels arrive, the realised metrics of the version that scored
it; records per batch_date, breaches that warn, fail or ask for a retrain, and alerts with the numbers."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from support.ml_runs import MODEL, ROOT, retrain, utc

from dagspec.runner import run_step
from dagspec.spec import load_definition

pytestmark = pytest.mark.service
MONITOR = {"id": "monitor_scores", "kind": "monitor", "model": MODEL, "input": "score_orders", "volume_batches": 3,
           "labels": {"data": {"table": {"schema": "ml", "table": "order_features"}}, "keys": ["order_id"],
                      "label": "is_lost", "delay_days": 2, "metric": "roc_auc", "threshold": 0.55}}


def monitored(tmp_path: Path, **changes) -> object:
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model.json").read_text())
    data["steps"].append({**MONITOR, **changes})
    path = tmp_path / "orders_model_monitored.json"
    path.write_text(json.dumps(data))
    return load_definition(path)


def days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]


def test_smoke(registry_server, home, tmp_path):
    pipeline = monitored(tmp_path)
    retrain(date(2025, 4, 1))
    first = date(2025, 4, 1)
    run_step(pipeline, "score_orders", utc(first), utc(first + timedelta(days=4)))
    result = run_step(pipeline, "monitor_scores", utc(first), utc(first + timedelta(days=4)))
    print(json.dumps(result, indent=1))
