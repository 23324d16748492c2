"""Staged rollouts against the real MLflow server: a challenger that wins its evaluation becomes the `canary`,
scores a deterministic share of each batch (by an MD5 of the score keys), and the monitor step's delayed labels
promote it once the window's labels are in (better) or roll it back (worse); every decision lands once in the
registry, in the store's records and in `dagspec models list`, and re-running a date never flips it."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from support.expected import warehouse_rows
from support.ml_runs import MODEL, ROOT, registry, retrain, sql, utc

from dagspec.runner import run_step
from dagspec.spec import load_definition

pytestmark = pytest.mark.service
APRIL, JULY = date(2025, 4, 1), date(2025, 7, 1)
RULE = {"canary_share": 0.3, "window_days": 3, "metric": "roc_auc", "margin": 0.0, "min_rows": 100}
MONITOR = {"id": "monitor_scores", "kind": "monitor", "model": MODEL, "input": "score_orders",
           "labels": {"data": {"table": {"schema": "ml", "table": "order_features"}}, "keys": ["order_id"],
                      "label": "is_lost", "delay_days": 2, "metric": "roc_auc", "threshold": 0.05}}
RULE_SQL = "CASE WHEN (channel = 'store' AND amount > 250) OR (channel = 'web' AND amount < 100) THEN 1 ELSE 0 END"


def definitions(tmp_path: Path, monitor: dict | None = MONITOR, **rule):
    daily = json.loads((ROOT / "dags" / "definitions" / "orders_model.json").read_text())
    if monitor is not None:
        daily["steps"].append(monitor)
    retraining = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())
    retraining["steps"][-1]["rollout"] = {**RULE, **rule}
    paths = tmp_path / "orders_model.json", tmp_path / "orders_model_retrain.json"
    for path, data in zip(paths, (daily, retraining), strict=True):
        path.write_text(json.dumps(data))
    return load_definition(paths[0]), load_definition(paths[1])


def run(pipeline, step: str, first: date, n: int = 1) -> dict:
    return run_step(pipeline, step, utc(first), utc(first + timedelta(days=n)))


def staged_retrain(pipeline, steps=("train", "evaluate", "promote")) -> dict:
    """The retraining run of the week ending 07-01 (a re-run of train alone would register another version)."""
    return {s: run(pipeline, s, JULY - timedelta(days=7), 7) for s in steps}


def aliases() -> tuple[str | None, str | None]:
    reg = registry()
    return tuple(str(v.version) if v else None for v in (reg.champion(MODEL), reg.aliased(MODEL, "canary")))


def bucket(*keys) -> int:
    text = "\x1f".join(str(k) for k in keys).encode()
    return int.from_bytes(hashlib.md5(text).digest()[:8], "little") % 10_000


def realised_auc(home: Path, version: int, days: list[date]) -> tuple[int, float]:
    from sklearn.metrics import roc_auc_score

    rows = warehouse_rows(home / "warehouse.duckdb", "SELECT f.is_lost, s.probability FROM ml.order_scores s JOIN "
                          "ml.order_features f USING (order_id) WHERE s.model_version = ? AND s.batch_date BETWEEN ? "
                          "AND ?", [version, days[0], days[-1]])
    return len(rows), roc_auc_score([r[0] for r in rows], [r[1] for r in rows])


def listed(monkeypatch) -> list[str]:
    from typer.testing import CliRunner

    from dagspec.cli import app

    monkeypatch.setenv("COLUMNS", "260")
    shown = CliRunner().invoke(app, ["models", "list", MODEL])
    assert shown.exit_code == 0, shown.output
    return shown.output.splitlines()


def test_a_better_canary_scores_its_share_and_is_promoted_after_the_window_once(registry_server, home, tmp_path,
                                                                              monkeypatch):
    daily, retraining = definitions(tmp_path)
    retrain(APRIL)
    # From April, store orders above 250 and web orders below 100 are the lost ones: v2 learns it and wins.
    sql(home, f"UPDATE ml.order_features SET is_lost = {RULE_SQL} WHERE batch_date >= DATE '2025-04-01'")
    promoted = staged_retrain(retraining)["promote"]
    assert promoted["outcome"] == "canary" and promoted["version"] == "2" and aliases() == ("1", "2")
    assert registry().version(MODEL, "2").tags["dagspec.decision"] == "canary"

    scored = run(daily, "score_orders", JULY, 5)
    assert scored["canary"] == {"version": "2", "share": 0.3}
    rows = warehouse_rows(home / "warehouse.duckdb", "SELECT order_id, customer_id, model_version FROM "
                          "ml.order_scores WHERE batch_date >= DATE '2025-07-01' ORDER BY order_id")
    assert len(rows) == sum(scored["rows"].values()) > 1500
    assert all((v == 2) == (bucket(o, c) < 3000) for o, c, v in rows)  # the documented hash, row by row
    share = sum(v == 2 for *_, v in rows) / len(rows)
    assert 0.26 < share < 0.34
    # Each row's probability is that of the model its model_version names.
    from dagspec.ml.features import frame
    from dagspec.ml.metrics import positive_proba
    from dagspec.stages.ml.common import champion_features

    wh = home / "warehouse.duckdb"
    day_rows = warehouse_rows(wh, "SELECT s.model_version, s.probability, f.amount, f.channel, f.segment, f.country "
                              "FROM ml.order_scores s JOIN ml.order_features f USING (order_id) WHERE s.batch_date = "
                              "DATE '2025-07-01' ORDER BY order_id")
    table = pa.table(dict(zip(["model_version", "probability", "amount", "channel", "segment", "country"],
                              map(list, zip(*day_rows, strict=True)), strict=True)))
    for v in ("1", "2"):
        mine = table.filter(pc.equal(table.column("model_version"), int(v)))
        feats, _, _ = champion_features(registry(), registry().version(MODEL, v))
        expected = positive_proba(registry().load(registry().version(MODEL, v).run_id), frame(mine, feats))
        assert mine.num_rows > 50 and np.allclose(mine.column("probability").to_numpy(), expected)
    run(daily, "score_orders", JULY + timedelta(days=1))  # a re-score routes every row the same way
    assert warehouse_rows(home / "warehouse.duckdb", "SELECT order_id, customer_id, model_version FROM "
                          "ml.order_scores WHERE batch_date >= DATE '2025-07-01' ORDER BY order_id") == rows

    # Labels of 07-01 .. 07-02 are in by 07-04 (delay 2): the window (07-01 .. 07-03) is not done: wait.
    monitored = run(daily, "monitor_scores", JULY, 4)
    waiting = monitored["canary"]
    # Each batch's drift is measured against the version that scored most of it: the champion.
    assert [b["model_version"] for b in monitored["batches"].values()] == ["1"] * 4
    assert waiting["decision"] == "wait" and aliases() == ("1", "2")
    assert waiting["reasons"][0].startswith("2 of 3 window day(s) labelled")
    decided = run(daily, "monitor_scores", JULY + timedelta(days=4))["canary"]
    window = [JULY + timedelta(days=i) for i in range(3)]
    (n2, auc2), (n1, auc1) = realised_auc(home, 2, window), realised_auc(home, 1, window)
    assert decided["decision"] == "promoted" and aliases() == ("2", None)
    assert (decided["canary"]["rows"], decided["champion"]["rows"]) == (n2, n1)
    assert decided["canary"]["value"] == pytest.approx(auc2) and decided["champion"]["value"] == pytest.approx(auc1)
    assert auc2 > auc1
    tags = registry().version(MODEL, "2").tags
    assert tags["dagspec.decision"] == tags["dagspec.canary.decision"] == "promoted"
    assert f"canary v2 {auc2:.4f} on {n2} labelled rows vs champion v1 {auc1:.4f} on {n1}" in tags["dagspec.reasons"]
    record = Path(decided["record"])
    assert record == home / "reports/orders_model/monitor_scores/rollouts/orders_lost_v2.json"
    assert json.loads(record.read_text())["decision"] == "promoted"

    # Re-running the deciding date, and the promote's, changes nothing.
    before = record.read_text()
    assert run(daily, "monitor_scores", JULY + timedelta(days=4))["canary"] is None
    assert staged_retrain(retraining, ["promote"])["promote"]["outcome"] == "promoted" and aliases() == ("2", None)
    assert record.read_text() == before and registry().version(MODEL, "2").tags["dagspec.canary.decision"] == "promoted"
    assert run(daily, "score_orders", JULY + timedelta(days=5))["canary"] is None
    line = next(line for line in listed(monkeypatch) if "2 ★" in line)
    cells = [c.strip() for c in line.split("│")]
    assert cells[cells.index("promoted") - 1] == "champion" and "roc_auc canary v2" in line


def test_a_worse_canary_is_rolled_back_and_stays_rolled_back(registry_server, home, tmp_path, monkeypatch):
    daily, retraining = definitions(tmp_path)
    retrain(APRIL)
    sql(home, f"UPDATE ml.order_features SET is_lost = {RULE_SQL} WHERE batch_date >= DATE '2025-04-01'")
    # ... but from July the opposite holds: what v2 learnt is wrong there.
    sql(home, f"UPDATE ml.order_features SET is_lost = 1 - {RULE_SQL} WHERE batch_date >= DATE '2025-07-01'")
    assert staged_retrain(retraining)["promote"]["outcome"] == "canary" and aliases() == ("1", "2")
    run(daily, "score_orders", JULY, 5)
    decided = run(daily, "monitor_scores", JULY, 5)["canary"]
    assert decided["decision"] == "rolled_back" and aliases() == ("1", None)
    assert decided["canary"]["value"] < decided["champion"]["value"]
    assert decided["canary"]["rows"] >= 100 and "<= margin 0.0: rolled back" in decided["reasons"][0]
    tags = registry().version(MODEL, "2").tags
    assert tags["dagspec.decision"] == tags["dagspec.canary.decision"] == "rolled_back"

    # The promote's date again: v2 still wins its holdout, but its rollout is decided: not staged again.
    again = staged_retrain(retraining, ["evaluate", "promote"])["promote"]
    assert again["outcome"] == "rolled_back" and aliases() == ("1", None)
    assert run(daily, "monitor_scores", JULY + timedelta(days=4))["canary"] is None
    scored = run(daily, "score_orders", JULY)
    assert scored["canary"] is None and warehouse_rows(home / "warehouse.duckdb", "SELECT DISTINCT model_version FROM "
                                                       "ml.order_scores WHERE batch_date = DATE '2025-07-01'") == [(1,)]
    line = next(line for line in listed(monkeypatch) if line.lstrip("│ ").startswith("2 "))
    cells = [c.strip() for c in line.split("│")]
    assert cells[cells.index("rolled_back") - 1] == "-" and "roc_auc canary v2" in line  # alias gone


def test_too_few_labelled_rows_when_the_window_ends_time_out_into_a_rollback(registry_server, home, tmp_path):
    daily, retraining = definitions(tmp_path, min_rows=100_000)
    retrain(APRIL)
    sql(home, f"UPDATE ml.order_features SET is_lost = {RULE_SQL} WHERE batch_date >= DATE '2025-04-01'")
    assert staged_retrain(retraining)["promote"]["outcome"] == "canary"
    run(daily, "score_orders", JULY, 5)
    decided = run(daily, "monitor_scores", JULY, 5)["canary"]
    assert decided["decision"] == "rolled_back" and aliases() == ("1", None)
    rows = decided["canary"]["rows"], decided["champion"]["rows"]
    assert decided["reasons"][0].startswith(f"timeout: 3 of 3 window day(s) labelled (2025-07-01 .. 2025-07-03), v2 has "
                                            f"{rows[0]} and v1 has {rows[1]} labelled rows (need 100000)")
    assert 0 < rows[0] < rows[1]
    assert registry().version(MODEL, "2").tags["dagspec.canary.decision"] == "rolled_back"


def test_a_canary_nobody_can_judge_is_rolled_back_at_its_deadline_by_the_monitor(registry_server, home, tmp_path):
    unlabelled = {k: v for k, v in MONITOR.items() if k != "labels"}
    daily, retraining = definitions(tmp_path, unlabelled, timeout_days=2)  # window 07-01 .. 07-03, deadline 07-05
    retrain(APRIL)
    sql(home, f"UPDATE ml.order_features SET is_lost = {RULE_SQL} WHERE batch_date >= DATE '2025-04-01'")
    assert staged_retrain(retraining)["promote"]["outcome"] == "canary" and aliases() == ("1", "2")
    run(daily, "score_orders", JULY, 5)
    waiting = run(daily, "monitor_scores", JULY, 5)["canary"]
    assert waiting["decision"] == "wait" and waiting["reasons"] == ["the monitor step has no labels"]
    assert aliases() == ("1", "2")
    decided = run(daily, "monitor_scores", JULY + timedelta(days=5))["canary"]
    assert decided["decision"] == "rolled_back" and aliases() == ("1", None)
    reason = ("timeout: undecided on 2025-07-06, 2 day(s) after the window's last batch 2025-07-03 (deadline "
              "2025-07-05): the monitor step has no labels; rolled back")
    assert decided["reasons"][0].startswith(reason)
    assert json.loads(Path(decided["record"]).read_text())["decision"] == "rolled_back"
    tags = registry().version(MODEL, "2").tags
    assert tags["dagspec.canary.decision"] == tags["dagspec.decision"] == "rolled_back"
    assert tags["dagspec.reasons"].startswith(reason)
    scored = run(daily, "score_orders", JULY + timedelta(days=5))
    assert scored["canary"] is None and warehouse_rows(home / "warehouse.duckdb", "SELECT DISTINCT model_version FROM "
                                                       "ml.order_scores WHERE batch_date = DATE '2025-07-06'") == [(1,)]


def test_a_canary_no_monitor_judges_is_rolled_back_by_the_score_step_past_its_deadline(registry_server, home,
                                                                                       tmp_path, monkeypatch):
    daily, retraining = definitions(tmp_path, None, timeout_days=2)
    retrain(APRIL)
    sql(home, f"UPDATE ml.order_features SET is_lost = {RULE_SQL} WHERE batch_date >= DATE '2025-04-01'")
    assert staged_retrain(retraining)["promote"]["outcome"] == "canary"
    assert run(daily, "score_orders", JULY, 5)["canary"] == {"version": "2", "share": 0.3}  # through the deadline
    scored = run(daily, "score_orders", JULY + timedelta(days=5))
    assert scored["canary"]["decision"] == "rolled_back" and aliases() == ("1", None)
    assert scored["canary"]["reason"].startswith("timeout: undecided on 2025-07-06, 2 day(s) after the window's last "
                                                 "batch 2025-07-03 (deadline 2025-07-05): no monitor step with labels "
                                                 "decided it; rolled back")
    versions = warehouse_rows(home / "warehouse.duckdb", "SELECT batch_date, count(DISTINCT model_version) FROM "
                              "ml.order_scores WHERE batch_date >= DATE '2025-07-05' GROUP BY 1 ORDER BY 1")
    assert [n for _, n in versions] == [2, 1]  # the deadline's day still had the canary; the day after, not
    assert registry().version(MODEL, "2").tags["dagspec.canary.decision"] == "rolled_back"
    line = next(line for line in listed(monkeypatch) if line.lstrip("│ ").startswith("2 "))
    assert "rolled_back" in line and "timeout: undecided" in line
