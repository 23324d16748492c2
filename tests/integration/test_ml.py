"""Model steps on the bundled sample, without Airflow: promote only a better challenger, score every row,
detect drift, refuse unsafe model files."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from support.expected import source_orders, warehouse_rows
from support.ml_runs import DAILY, MODEL, daily_with, features_for, registry, retrain, sql, utc

from dagspec.runner import run_step


def test_retrains_promote_a_better_challenger_and_keep_the_champion_against_a_worse_one(home):
    first = retrain(date(2025, 4, 1))
    assert first["promote"]["promoted"] is True and first["promote"]["champion"] is None
    assert first["promote"]["checks"][0]["metric"] == "roc_auc" and first["promote"]["checks"][0]["passed"]
    assert first["evaluate"]["champion"] is None
    assert str(registry().champion(MODEL).version) == "1"

    # The world shifts from April: store orders above 250 and web orders below 100 are now the lost ones.
    sql(home, "UPDATE ml.order_features SET is_lost = CASE WHEN (channel = 'store' AND amount > 250) "
              "OR (channel = 'web' AND amount < 100) THEN 1 ELSE 0 END WHERE batch_date >= DATE '2025-04-01'")
    second = retrain(date(2025, 7, 1))
    ev, decision = second["evaluate"], second["promote"]
    assert ev["champion_version"] == "1" and ev["rows"] == second["train"]["rows_holdout"]
    assert ev["challenger"]["roc_auc"] > ev["champion"]["roc_auc"] + 0.005  # same holdout, both measured
    assert decision["promoted"] is True and decision["version"] == "2"
    assert decision["champion"]["roc_auc"] == pytest.approx(ev["champion"]["roc_auc"])
    assert str(registry().champion(MODEL).version) == "2"

    # A challenger trained on garbage labels (the holdout days stay true) must lose to the champion.
    sql(home, "UPDATE ml.order_features SET is_lost = CAST(order_id % 5 = 0 AS INTEGER) "
              "WHERE batch_date < DATE '2025-06-26'")
    third = retrain(date(2025, 7, 15))
    decision = third["promote"]
    assert third["evaluate"]["champion_version"] == "2"
    assert decision["promoted"] is False and decision["version"] == "3"
    assert decision["challenger"]["roc_auc"] < decision["champion"]["roc_auc"]
    assert any("not better enough" in r for r in decision["reasons"])
    assert str(registry().champion(MODEL).version) == "2"  # unchanged

    # Every decision is recorded with its numbers, on disk and in the registry.
    record = json.loads((home / "reports/orders_model_retrain/promote/orders_lost_v3.json").read_text())
    assert record["promoted"] is False and record["checks"][0]["champion"] == pytest.approx(decision["champion"]["roc_auc"])
    versions = {v["version"]: v for v in registry().versions(MODEL)}
    assert [versions[v]["tags"]["dagspec.decision"] for v in ("1", "2", "3")] == ["promoted", "promoted", "rejected"]
    assert versions["2"]["champion"] and not versions["3"]["champion"]
    assert "champion.roc_auc" in versions["3"]["metrics"]

    # The training report: HTML with its plots, beside the version.
    report = Path(third["train"]["report"])
    assert report.exists() and "not promoted" in report.read_text()
    for png in ("metric_history.png", "roc.png", "feature_importance.png"):
        assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_lists_versions_and_rolls_the_champion_back(home, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    retrain(date(2025, 4, 1))
    sql(home, "UPDATE ml.order_features SET is_lost = CASE WHEN channel = 'store' THEN 1 ELSE 0 END "
              "WHERE batch_date >= DATE '2025-04-01'")
    retrain(date(2025, 7, 1))
    assert str(registry().champion(MODEL).version) == "2"
    listed = CliRunner().invoke(app, ["models", "list", MODEL])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "promoted" in line]
    assert len(lines) == 2 and "2 ★" in lines[1] and "2025-07-01" in lines[1]
    rolled = CliRunner().invoke(app, ["models", "rollback", MODEL, "1"])
    assert rolled.exit_code == 0 and "champion is now version 1" in rolled.output
    assert str(registry().champion(MODEL).version) == "1"
    assert CliRunner().invoke(app, ["models", "rollback", MODEL, "9"]).exit_code == 1


def test_scores_every_row_of_the_window_and_a_rerun_replaces_them(home):
    retrain(date(2025, 4, 1))
    days = [date(2025, 4, 1), date(2025, 4, 2)]
    result = run_step(DAILY, "score_orders", utc(days[0]), utc(days[-1] + timedelta(days=1)))
    wh = home / "warehouse.duckdb"
    for day in days:
        expected = [o[0] for o in source_orders(home / "source.db", day)]
        got = warehouse_rows(wh, "SELECT order_id FROM ml.order_scores WHERE batch_date = ? ORDER BY order_id", [day])
        assert [r[0] for r in got] == expected and result["rows"][day.isoformat()] == len(expected)
        manifest = json.loads((home / f"store/ml/order_scores/batch_date={day}/_manifest.json").read_text())
        assert manifest["rows"] == len(expected)
    stats = warehouse_rows(wh, "SELECT min(probability), max(probability), min(model_version), max(model_version), "
                               "count(*) FILTER (WHERE prediction = CAST(probability >= 0.5 AS TINYINT)) = count(*) "
                               "FROM ml.order_scores")
    lo, hi, vmin, vmax, consistent = stats[0]
    assert 0 <= lo < hi <= 1 and vmin == vmax == 1 and consistent
    before = warehouse_rows(wh, "SELECT * FROM ml.order_scores ORDER BY order_id")
    run_step(DAILY, "score_orders", utc(days[0]), utc(days[0] + timedelta(days=1)))
    assert warehouse_rows(wh, "SELECT * FROM ml.order_scores ORDER BY order_id") == before


@pytest.mark.parametrize("score_output", ["table", "export"])
def test_scores_go_out_through_a_publish_step_like_any_table(home, tmp_path, score_output):
    def published(data: dict) -> None:
        score = next(s for s in data["steps"] if s["id"] == "score_orders")
        score["output"] = {score_output: {"schema": "ml", "table": "order_scores"}}
        data["steps"].append({"id": "publish_scores", "kind": "publish", "input": "score_orders",
                              "table": {"schema": "mart", "table": "lost_risk"},
                              "export": {"format": "csv", "target": {"schema": "out", "table": "lost_risk"}}})

    pipeline = daily_with(tmp_path / "orders_model_published.json", published)
    day = date(2025, 4, 1)
    for step in ("score_orders", "publish_scores"):
        run_step(pipeline, step, utc(day), utc(day + timedelta(days=1)))
    expected = [o[0] for o in source_orders(home / "source.db", day)]
    wh = home / "warehouse.duckdb"
    published = warehouse_rows(wh, "SELECT order_id, probability, batch_date FROM mart.lost_risk ORDER BY order_id")
    assert [r[0] for r in published] == expected and {r[2] for r in published} == {day}
    assert all(0 <= r[1] <= 1 for r in published)
    csv_rows = warehouse_rows(wh, "SELECT order_id FROM read_csv(?) ORDER BY order_id",
                              [str(next((home / f"store/out/lost_risk/batch_date={day}").glob("*.csv")))])
    assert [r[0] for r in csv_rows] == expected


def test_injected_drift_is_detected_and_asks_for_a_retrain(home):
    retrain(date(2025, 4, 1))
    calm = run_step(DAILY, "drift_check", utc(date(2025, 4, 1)), utc(date(2025, 4, 2)))
    assert calm["drifted"] is False and calm["reasons"] == [] and calm["champion_version"] == "1"

    with sqlite3.connect(home / "source.db") as con:  # a day of big partner orders
        con.execute("UPDATE orders SET channel = 'partner', amount = amount * 4 "
                    "WHERE ordered_at >= '2025-04-02' AND ordered_at < '2025-04-03'")
    features_for(date(2025, 4, 2), date(2025, 4, 3))
    drifted = run_step(DAILY, "drift_check", utc(date(2025, 4, 2)), utc(date(2025, 4, 3)))
    assert drifted["drifted"] is True and drifted["retrain"] is True
    flagged = {r.split(":")[0] for r in drifted["reasons"]}
    assert flagged == {"channel", "amount"}
    assert drifted["features"]["channel"]["psi"] > 0.2 and drifted["features"]["amount"]["ks"] > 0.15
    assert drifted["features"]["segment"]["psi"] < 0.2
    record = json.loads(Path(drifted["record"]).read_text())
    assert record["reasons"] == drifted["reasons"] and record["rows"] == len(source_orders(home / "source.db", date(2025, 4, 2)))


def test_a_model_without_a_champion_is_not_scored_and_drift_asks_for_the_first_model(home):
    from dagspec.errors import StepSkipped

    with pytest.raises(StepSkipped, match="no champion yet: model 'orders_lost' has none"):
        run_step(DAILY, "score_orders", utc(date(2025, 4, 1)), utc(date(2025, 4, 2)))
    assert "order_scores" not in _ml_tables(home)  # nothing half-written
    first = run_step(DAILY, "drift_check", utc(date(2025, 4, 1)), utc(date(2025, 4, 2)))
    assert first["drifted"] is True and "no champion yet" in first["reasons"][0]


def _ml_tables(home: Path) -> set[str]:
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ml'").fetchall()
    return {r[0] for r in rows}


def test_a_first_retrain_before_any_features_skips_and_one_with_a_champion_fails(home):
    from dagspec.errors import DataNotYet, StepSkipped

    # A fresh demo: the weekly retrain's first scheduled run can start before orders_model wrote a feature.
    sql(home, "DROP TABLE ml.order_features")
    with pytest.raises(StepSkipped, match="no training data yet and no champion of 'orders_lost'.*does not exist yet"):
        retrain(date(2025, 4, 1))
    assert registry().champion(MODEL) is None
    features_for(date(2025, 3, 1), date(2025, 4, 1))
    assert retrain(date(2025, 4, 1))["promote"]["promoted"] is True
    sql(home, "DROP TABLE ml.order_features")
    # With a champion the same missing table is a fault: the model it keeps fresh would silently go stale.
    with pytest.raises(DataNotYet, match="ml.order_features does not exist yet"):
        retrain(date(2025, 4, 8))


class Sneaky:
    """Stands for code a model file could smuggle in."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_model_files_of_unknown_types_are_refused(home, tmp_path):
    import skops.io as sio

    from dagspec.ml.registry import UnsafeModel, load_model, save_model
    from dagspec.stages import StepFailed

    odd = tmp_path / "odd.skops"
    sio.dump({"model": Sneaky.__new__(Sneaky)}, odd)
    with pytest.raises(UnsafeModel, match="does not trust: .*Sneaky"):
        load_model(odd)
    pickled = tmp_path / "model.skops"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeModel, match="not a skops model file"):
        load_model(pickled)

    # Through the registry: a champion whose file holds an unknown type is never loaded or scored.
    retrain(date(2025, 4, 1))
    reg = registry()
    champ = reg.champion(MODEL)
    artifact = Path(reg.model_location(champ.run_id).removeprefix("file://")) / "model.skops"
    save_model(Sneaky.__new__(Sneaky), artifact)
    with pytest.raises(StepFailed, match="refusing to load model.skops"):
        run_step(DAILY, "score_orders", utc(date(2025, 4, 1)), utc(date(2025, 4, 2)))
    assert warehouse_rows(home / "warehouse.duckdb",
                          "SELECT count(*) FROM information_schema.tables WHERE table_name = 'order_scores'") == [(0,)]


def test_versions_in_the_earlier_bare_skops_format_still_load_and_score(home, tmp_path):
    """A version whose `model` artifact is a bare model.skops (dagspec's format before MLflow model directories)
    is pinned by the file's sha256, loads through skops and scores exactly as the same model in today's format."""
    from dagspec.ml.registry import FORMAT_TAG, MODEL_FILE, SHA256_TAG, file_sha256, save_model

    retrain(date(2025, 4, 1))
    reg = registry()
    day = date(2025, 4, 2)
    scores = "SELECT order_id, prediction, probability FROM ml.order_scores ORDER BY order_id"
    assert run_step(DAILY, "score_orders", utc(day), utc(day + timedelta(days=1)))["version"] == "1"
    today = warehouse_rows(home / "warehouse.duckdb", scores)

    v1 = reg.champion(MODEL)
    tags = {k: v for k, v in reg.client.get_run(v1.run_id).data.tags.items()
            if k in ("dagspec.features", "dagspec.target", "dagspec.task")}
    run_id = reg.start_run(MODEL, tags, "earlier format")
    (tmp_path / "model").mkdir()
    save_model(reg.load(v1.run_id), tmp_path / "model" / MODEL_FILE)
    reg.log_files(run_id, tmp_path / "model", "model")
    version = reg.register(MODEL, run_id, {})
    reg.finish(run_id)
    pins = reg.version(MODEL, version).tags
    assert pins[SHA256_TAG] == file_sha256(tmp_path / "model" / MODEL_FILE) and FORMAT_TAG not in pins
    reg.set_champion(MODEL, version)

    assert run_step(DAILY, "score_orders", utc(day), utc(day + timedelta(days=1)))["version"] == version == "2"
    assert warehouse_rows(home / "warehouse.duckdb", scores) == today
