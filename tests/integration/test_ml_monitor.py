"""The monitor step on the sample orders, against the real MLflow server: a scored batch's prediction drift,
row volume, feature nulls and ranges and, once labels arrive, the realised metrics of the version that scored
it; one record per batch_date, breaches that warn, fail or ask for a retrain, alerts with the numbers."""

from __future__ import annotations

import json
import statistics
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from support.expected import source_orders, warehouse_rows
from support.ml_runs import MODEL, ROOT, registry, retrain, sql, utc

from dagspec.runner import run_step
from dagspec.spec import load_definition

pytestmark = pytest.mark.service
MONITOR = {"id": "monitor_scores", "kind": "monitor", "model": MODEL, "input": "score_orders", "volume_batches": 3,
           "labels": {"data": {"table": {"schema": "ml", "table": "order_features"}}, "keys": ["order_id"],
                      "label": "is_lost", "delay_days": 2, "metric": "roc_auc", "threshold": 0.55}}
APRIL = date(2025, 4, 1)


def monitored(tmp_path: Path, alerts: dict | None = None, **changes):
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model.json").read_text())
    data["steps"].append({**MONITOR, **changes})
    if alerts:
        data["alerts"] = alerts
    path = tmp_path / f"orders_model_{changes.get('on_breach', 'warn')}.json"
    path.write_text(json.dumps(data))
    return load_definition(path)


def run(pipeline, step: str, first: date, n: int = 1) -> dict:
    return run_step(pipeline, step, utc(first), utc(first + timedelta(days=n)))


def day(n: int) -> date:
    return APRIL + timedelta(days=n)


def records(home: Path) -> dict[str, dict]:
    folder = home / "reports/orders_model/monitor_scores/records"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def test_stable_batches_pass_with_the_numbers_recorded_and_a_rerun_leaves_one_record(registry_server, home, tmp_path):
    from sklearn.metrics import roc_auc_score

    from dagspec.ml.drift import psi

    pipeline = monitored(tmp_path)
    retrain(APRIL)
    run(pipeline, "score_orders", APRIL, 4)
    result = run(pipeline, "monitor_scores", APRIL, 4)
    assert result["breached"] is False and result["reasons"] == [] and result["retrain_requested"] is False
    wh = home / "warehouse.duckdb"
    v1 = registry().champion(MODEL)
    bins = registry().read_json(v1.run_id, "reference/predictions.json")
    rows = {}
    for d in [day(i) for i in range(4)]:
        rec = result["batches"][d.isoformat()]
        rows[d] = len(source_orders(home / "source.db", d))
        assert rec["model_version"] == "1" and rec["volume"]["rows"] == rec["prediction"]["rows"] == rows[d]
        proba = np.array([r[0] for r in warehouse_rows(
            wh, "SELECT probability FROM ml.order_scores WHERE batch_date = ?", [d])])
        shares = np.bincount(np.searchsorted(bins["edges"], proba, side="right"), minlength=len(bins["edges"]) + 1)
        assert rec["prediction"]["psi"] == pytest.approx(psi(bins["shares"], shares / len(proba)), abs=1e-12)
        lo, hi, nulls = warehouse_rows(wh, "SELECT min(amount), max(amount), count(*) FILTER (WHERE amount IS NULL) "
                                           "FROM ml.order_features WHERE batch_date = ?", [d])[0]
        amount = rec["features"]["amount"]
        assert (amount["min"], amount["max"], amount["nulls"], amount["out_of_range"]) == (lo, hi, nulls, 0)
        assert set(rec["features"]) == {"amount", "channel", "segment", "country"}
    assert result["batches"][day(0).isoformat()]["volume"]["median"] is None  # no history yet
    assert result["batches"][day(3).isoformat()]["volume"]["median"] == statistics.median([rows[day(i)] for i in range(3)])

    # The labels of 04-01 are in by 04-03 (delay 2): the realised metrics of v1 on that batch.
    realised = result["batches"][day(2).isoformat()]["realised"]
    joined = warehouse_rows(wh, "SELECT f.is_lost, s.probability FROM ml.order_scores s JOIN ml.order_features f "
                                "USING (order_id) WHERE s.batch_date = ?", [APRIL])
    assert realised["batch_date"] == "2025-04-01" and realised["model_version"] == "1"
    assert realised["rows"] == len(joined) == rows[APRIL]
    assert realised["metrics"]["roc_auc"] == pytest.approx(roc_auc_score([r[0] for r in joined], [r[1] for r in joined]))
    assert result["batches"][APRIL.isoformat()]["realised"]["note"] == "batch 2025-03-30 was not scored"

    # Versions registered before the prediction bins were stored are binned from their holdout: the same bins.
    from dagspec.stages.ml.common import champion_features
    from dagspec.stages.ml.monitor_inputs import References

    feats, _, task = champion_features(registry(), v1)
    rebinned = References(registry(), MODEL).from_holdout(v1.run_id, feats, task)
    assert rebinned["rows"] == bins["rows"] and rebinned["shares"] == pytest.approx(bins["shares"])
    assert rebinned["edges"] == pytest.approx(bins["edges"])

    # A re-run of one date replaces its record: still one file per date, the same numbers.
    before = records(home)
    again = run(pipeline, "monitor_scores", day(1))
    assert sorted(records(home)) == [d.isoformat() for d in (day(0), day(1), day(2), day(3))]
    assert records(home) == before and again["batches"][day(1).isoformat()] == before[day(1).isoformat()]
    assert Path(again["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The Definitions page's "latest checks" column: the newest record's verdict, linking the plot.
    from dagspec.airflow.ui_reports import latest_reports, report_file

    shown = [r for r in latest_reports(home / "reports", pipeline) if r["step"] == "monitor_scores"]
    assert shown == [{"step": "monitor_scores", "batch_date": "2025-04-04", "passed": True,
                      "href": "reports/orders_model/monitor_scores/monitor.png"}]
    assert report_file(home / "reports", shown[0]["href"].removeprefix("reports/")) == Path(again["plot"])


def test_shifted_predictions_breach_and_warn_fail_or_ask_for_a_retrain(registry_server, home, tmp_path, hook,
                                                                       monkeypatch):
    from airflow.sdk import Asset

    from dagspec.airflow.alerts import AlertCallback
    from dagspec.airflow.build import build_dag
    from dagspec.airflow.ml import RetrainSignalOperator, retrain_asset
    from dagspec.errors import AlreadyAlerted

    alerts = {"webhook_conn_id": "monitor_hook"}
    monkeypatch.setenv("AIRFLOW_CONN_MONITOR_HOOK", f"http://127.0.0.1:{hook.port}/hooks/monitor")
    warn = monitored(tmp_path, alerts)
    retrain(APRIL)
    run(warn, "score_orders", APRIL, 4)
    assert run(warn, "monitor_scores", APRIL, 3)["breached"] is False and hook.posts == []

    # Day 4: every order is a big one, inside the training range: the predictions shift, nothing else does.
    sql(home, "UPDATE ml.order_features SET amount = 450 + order_id % 50 WHERE batch_date = DATE '2025-04-04'")
    run(warn, "score_orders", day(3))
    warned = run(warn, "monitor_scores", day(3))
    assert warned["breached"] is True and warned["retrain_requested"] is False
    assert len(warned["reasons"]) == 1 and warned["reasons"][0].startswith("2025-04-04: prediction PSI ")
    psi = warned["batches"]["2025-04-04"]["prediction"]["psi"]
    assert psi > 0.2
    path, payload = hook.posts[-1]
    assert path == "/hooks/monitor" and "monitor breach" in payload["text"]
    assert f"2025-04-04: prediction PSI {psi:.3f} &gt; 0.2" in json.dumps(payload)  # mrkdwn-escaped
    assert "|Monitor plot>" in json.dumps(payload)

    failing = monitored(tmp_path, alerts, on_breach="fail")
    with pytest.raises(AlreadyAlerted, match=r"monitor monitor_scores: 2025-04-04: prediction PSI \d") as failed:
        run(failing, "monitor_scores", day(3))
    assert len(hook.posts) == 2 and records(home)["2025-04-04"]["prediction"]["psi"] == pytest.approx(psi)
    # In Airflow the task then fails: its failure callback sends nothing more (the breach alert had the numbers).
    definition = tmp_path / "monitored.json"
    definition.write_text(json.dumps(failing.model_dump(mode="json", by_alias=True, exclude_none=True)))
    AlertCallback(str(definition), "failure")({"exception": failed.value, "ti": type("TI", (), {"task_id": "m"})()})
    assert len(hook.posts) == 2

    from dagspec.airflow.ui_reports import latest_monitor

    assert latest_monitor(home / "reports", "orders_model", "monitor_scores")[0]["passed"] is False
    asking = monitored(tmp_path, alerts, on_breach="retrain")
    requested = run(asking, "monitor_scores", day(3))
    assert requested["retrain_requested"] is True and len(hook.posts) == 3
    # In Airflow the signal task after the monitor emits the retrain Asset event with the reasons.
    dag = build_dag(asking, Path(asking.dag_id))
    signal = dag.get_task("monitor_scores_retrain")
    assert signal.upstream_task_ids == {"monitor_scores"} and [a.uri for a in signal.outlets] == [retrain_asset(MODEL).uri]
    events: dict[Asset, object] = {retrain_asset(MODEL): type("Event", (), {"extra": None})()}
    context = {"ti": type("TI", (), {"xcom_pull": lambda self, task_ids: requested})(),
               "dag": dag, "outlet_events": events}
    assert isinstance(signal, RetrainSignalOperator)
    extra = signal.execute(context)
    assert events[retrain_asset(MODEL)].extra == extra and extra["reasons"] == requested["reasons"]


def test_a_volume_drop_and_nulls_in_a_feature_breach(registry_server, home, tmp_path):
    pipeline = monitored(tmp_path)
    retrain(APRIL)
    sql(home, "DELETE FROM ml.order_features WHERE batch_date = DATE '2025-04-04' AND order_id % 5 <> 0")
    sql(home, "UPDATE ml.order_features SET amount = NULL WHERE batch_date = DATE '2025-04-05' AND order_id % 4 = 0")
    run(pipeline, "score_orders", APRIL, 5)
    result = run(pipeline, "monitor_scores", APRIL, 5)
    dropped, nulls = result["batches"]["2025-04-04"], result["batches"]["2025-04-05"]
    assert result["batches"]["2025-04-03"]["reasons"] == []
    volume = dropped["volume"]
    assert volume["change"] < -0.5 and [r.split(" vs ")[0] for r in dropped["reasons"]] == [f"rows {volume['rows']}"]
    amount = nulls["features"]["amount"]
    expected = warehouse_rows(home / "warehouse.duckdb", "SELECT count(*) FILTER (WHERE amount IS NULL), count(*) "
                                                         "FROM ml.order_features WHERE batch_date = DATE '2025-04-05'")
    assert (amount["nulls"], amount["rows"]) == expected[0] and amount["null_share"] > 0.2
    assert nulls["reasons"] == [f"amount: null share {amount['null_share']:.3f} vs 0.000 in training (limit +0.05)"]
    assert result["breached"] is True and len(result["reasons"]) == 2


def test_realised_metrics_are_those_of_the_version_that_made_the_labelled_predictions(registry_server, home, tmp_path):
    from sklearn.metrics import roc_auc_score

    pipeline = monitored(tmp_path)
    retrain(APRIL)
    run(pipeline, "score_orders", APRIL)  # scored by v1
    # From April, store orders above 250 and web orders below 100 are the lost ones: v2 learns it and wins.
    sql(home, "UPDATE ml.order_features SET is_lost = CASE WHEN (channel = 'store' AND amount > 250) "
              "OR (channel = 'web' AND amount < 100) THEN 1 ELSE 0 END WHERE batch_date >= DATE '2025-04-01'")
    assert retrain(date(2025, 7, 1))["promote"]["version"] == "2" and str(registry().champion(MODEL).version) == "2"
    run(pipeline, "score_orders", day(2))  # scored by v2
    result = run(pipeline, "monitor_scores", day(2))
    record = result["batches"]["2025-04-03"]
    realised = record["realised"]
    assert record["model_version"] == "2" and realised["model_version"] == "1" and realised["versions"] == ["1"]
    joined = warehouse_rows(home / "warehouse.duckdb", "SELECT f.is_lost, s.probability FROM ml.order_scores s "
                            "JOIN ml.order_features f USING (order_id) WHERE s.batch_date = ?", [APRIL])
    value = roc_auc_score([r[0] for r in joined], [r[1] for r in joined])
    assert realised["rows"] == len(joined) and realised["metrics"]["roc_auc"] == pytest.approx(value)
    breach = [r for r in record["reasons"] if r.startswith("realised roc_auc")]
    assert breach == ([f"realised roc_auc {value:.4f} of v1 on batch 2025-04-01 ({len(joined)} labelled rows) is "
                       "worse than 0.55"] if value < 0.55 else [])
