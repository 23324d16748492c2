"""Model steps beyond a classifier on a table split by time: a regressor end to end, an entity split,
training rows from a SQL file, and the champion's ROC curve in the training report."""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from support.expected import warehouse_rows
from support.ml_runs import ROOT, registry, sql, utc

from dagspec.runner import run_step
from dagspec.spec import load_definition
from dagspec.spec.ml_steps import ESTIMATORS

PNG = b"\x89PNG\r\n\x1a\n"
CATEGORICAL = ("channel", "segment", "country")


def definition(tmp_path: Path, dag_id: str, steps: list[dict]):
    """The example retraining definition with other steps (same schedule, owner and dates)."""
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())
    data.update(dag_id=dag_id, steps=steps)
    path = tmp_path / f"{dag_id}.json"
    path.write_text(json.dumps(data))
    return load_definition(path)


def run(pipeline, steps, end: date, days: int = 7) -> dict:
    return {s: run_step(pipeline, s, utc(end) - timedelta(days=days), utc(end)) for s in steps}


def window_rows(home: Path, columns: str, start: date, end: date) -> list[tuple]:
    return warehouse_rows(home / "warehouse.duckdb", f"SELECT {columns} FROM ml.order_features WHERE ordered_at >= ? "
                          "AND ordered_at < ? ORDER BY ordered_at, order_id", [utc(start).replace(tzinfo=None),
                                                                                utc(end).replace(tzinfo=None)])


def holdout_of(version: str, model: str):
    """The holdout rows a version was measured on, as its train step stored them."""
    reg = registry()
    with tempfile.TemporaryDirectory() as tmp:
        return pq.read_table(reg.download(reg.version(model, version).run_id, "data/holdout.parquet", Path(tmp)))


def report_data(html: Path) -> dict:
    text = html.read_text()
    start = text.index('id="dagspec-report">') + len('id="dagspec-report">')
    import html as h

    return json.loads(h.unescape(text[start:text.index("</script>", start)]))


# --- 1. a regressor: train -> evaluate -> promote (lower RMSE wins) -> score ------------------------------------

REG_MODEL = "order_amount"
REG_DAYS = 28


def regression_pipeline(tmp_path: Path):
    return definition(tmp_path, "amount_model", [
        {"id": "train", "kind": "train", "model": REG_MODEL, "estimator": "linear_regression",
         "features": [{"column": c, "type": "categorical"} for c in CATEGORICAL]
         + [{"column": "is_lost", "type": "numeric"}],
         "target": "amount",
         "data": {"table": {"schema": "ml", "table": "order_features"}, "time_column": "ordered_at", "days": REG_DAYS},
         "split": {"by": "time", "column": "ordered_at", "holdout": 0.25}},
        {"id": "evaluate", "kind": "evaluate", "input": "train"},
        {"id": "promote", "kind": "promote", "input": "evaluate", "primary": "rmse", "margin": 1.0,
         "guards": [{"metric": "mae", "max_degradation": 1.0}], "minimums": {"rmse": 1000.0}},
        {"id": "score", "kind": "score", "model": REG_MODEL, "keys": ["order_id"],
         "data": {"table": {"schema": "ml", "table": "order_features"}, "time_column": "ordered_at"},
         "output": {"table": {"schema": "ml", "table": "amount_scores"}}},
    ])


def independent_fit(home: Path, end: date, n_holdout: int):
    """Refit the same model with scikit-learn alone on the window's rows, the latest `n_holdout` held out."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    cols = ["order_id", "ordered_at", *CATEGORICAL, "is_lost", "amount"]
    df = pd.DataFrame(window_rows(home, ", ".join(cols), end - timedelta(days=REG_DAYS), end), columns=cols)
    train, hold = df.iloc[:-n_holdout], df.iloc[-n_holdout:]
    assert train["ordered_at"].max() < hold["ordered_at"].min()  # a clean cut in time: no moment on both sides
    X = list(CATEGORICAL) + ["is_lost"]
    model = make_pipeline(ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL))],
                                            remainder="passthrough"), LinearRegression())
    model.fit(train[X], train["amount"].astype(float))
    return model, hold[X], hold["amount"].to_numpy(dtype=float)


def sk_metrics(y, predicted) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {"rmse": mean_squared_error(y, predicted) ** 0.5, "mae": mean_absolute_error(y, predicted),
            "r2": r2_score(y, predicted)}


def test_a_regressor_is_measured_promoted_on_lower_rmse_and_scores(home, tmp_path):
    pipeline = regression_pipeline(tmp_path)
    steps = ("train", "evaluate", "promote")

    first = run(pipeline, steps, date(2025, 4, 1), REG_DAYS)
    assert first["promote"]["promoted"] is True and first["promote"]["primary"] == "rmse"
    assert first["promote"]["checks"][0] == {"check": "minimum", "metric": "rmse", "value": pytest.approx(
        first["train"]["metrics"]["rmse"]), "bound": 1000.0, "passed": True}

    # From April the amount is set by the channel (plus a little noise): a new model can learn it, v1 cannot.
    sql(home, "UPDATE ml.order_features SET amount = CASE channel WHEN 'web' THEN 50 WHEN 'mobile' THEN 80 "
              "WHEN 'store' THEN 200 ELSE 400 END + order_id % 7 WHERE batch_date >= DATE '2025-04-01'")
    second = run(pipeline, steps, date(2025, 6, 1), REG_DAYS)
    train, ev, decision = second["train"], second["evaluate"], second["promote"]

    # RMSE, MAE and R2 of the challenger and of the champion, recomputed with scikit-learn on the same rows.
    mine, X_hold, y_hold = independent_fit(home, date(2025, 6, 1), train["rows_holdout"])
    assert ev["rows"] == train["rows_holdout"] == len(y_hold) and train["rows_train"] + len(y_hold) == len(
        window_rows(home, "order_id", date(2025, 5, 4), date(2025, 6, 1)))
    expected = sk_metrics(y_hold, mine.predict(X_hold))
    assert set(ev["challenger"]) == {"rmse", "mae", "r2"}
    for m, value in expected.items():
        assert ev["challenger"][m] == pytest.approx(value, rel=1e-6, abs=1e-9), m
        assert train["metrics"][m] == pytest.approx(value, rel=1e-6, abs=1e-9), m
    assert expected["r2"] > 0.99 and 1.5 < expected["rmse"] < 2.5 and 1.2 < expected["mae"] < 2.2  # noise: 0..6
    v1 = registry().load(registry().version(REG_MODEL, "1").run_id)
    champion_expected = sk_metrics(y_hold, v1.predict(X_hold))
    for m, value in champion_expected.items():
        assert ev["champion"][m] == pytest.approx(value, rel=1e-6, abs=1e-9), m
    assert ev["champion_version"] == "1" and champion_expected["rmse"] > 50 * expected["rmse"]

    # Lower RMSE wins: the gain is champion minus challenger.
    primary = decision["checks"][0]
    assert decision["promoted"] is True and decision["version"] == "2"
    assert primary["gain"] == pytest.approx(champion_expected["rmse"] - expected["rmse"], rel=1e-6)
    assert str(registry().champion(REG_MODEL).version) == "2"

    # The report: regression metrics and the residual plot (no ROC curve for a regressor).
    html = Path(train["report"])
    shown = report_data(html)
    assert shown["metrics"] == pytest.approx(expected, rel=1e-6) and shown["champion"] == pytest.approx(
        champion_expected, rel=1e-6)
    assert shown["decision"]["promoted"] is True and 'src="residuals.png"' in html.read_text()
    for png in ("residuals.png", "metric_history.png", "feature_importance.png"):
        assert (html.parent / png).read_bytes()[:8] == PNG
    assert not (html.parent / "roc.png").exists()

    # A worse challenger (trained on scrambled amounts; the holdout days stay true) loses on RMSE.
    sql(home, "UPDATE ml.order_features SET amount = (order_id % 13) * 30 WHERE batch_date < DATE '2025-06-20'")
    third = run(pipeline, steps, date(2025, 7, 1), REG_DAYS)
    decision = third["promote"]
    assert decision["promoted"] is False and decision["checks"][0]["gain"] < -1.0
    assert decision["challenger"]["rmse"] > decision["champion"]["rmse"]
    assert "not better enough" in decision["reasons"][0]
    assert str(registry().champion(REG_MODEL).version) == "2"

    # Scores: the champion's (v2) predictions for every row of the day, as the independent fit predicts them.
    day = date(2025, 6, 2)
    scored = run_step(pipeline, "score", utc(day), utc(day + timedelta(days=1)))
    cols = ["order_id", *CATEGORICAL, "is_lost"]
    rows = window_rows(home, ", ".join(cols), day, day + timedelta(days=1))
    got = warehouse_rows(home / "warehouse.duckdb",
                         "SELECT order_id, prediction, model_version FROM ml.amount_scores ORDER BY order_id")
    assert scored["version"] == "2" and scored["rows"] == {day.isoformat(): len(rows)}
    import pandas as pd

    frame = pd.DataFrame(sorted(rows), columns=cols)
    assert [g[0] for g in got] == frame["order_id"].tolist() and {g[2] for g in got} == {2}
    np.testing.assert_allclose([g[1] for g in got], mine.predict(frame[list(X_hold.columns)]), rtol=1e-6)
    columns = [c for (c,) in warehouse_rows(home / "warehouse.duckdb", "SELECT column_name FROM "
                                            "information_schema.columns WHERE table_name = 'amount_scores'")]
    assert "probability" not in columns


# --- 2. an entity split: whole customers held out, seeded and reproducible -----------------------------------

def entity_pipeline(tmp_path: Path, seed: int):
    train = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())["steps"][0]
    train.update(seed=seed, split={"by": "entity", "column": "customer_id", "holdout": 0.25},
                 data={"table": {"schema": "ml", "table": "order_features"}, "days": 21})
    evaluate = {"id": "evaluate", "kind": "evaluate", "input": "train"}
    return definition(tmp_path, f"entity_split_{seed}", [train, evaluate])


def held_out_customers(held, window: list[tuple]) -> set:
    """The customers of a holdout, checked to be whole: all their orders in the window, and only those."""
    customers = set(held.column("customer_id").to_pylist())
    assert Counter(held.column("customer_id").to_pylist()) == Counter(c for _, c in window if c in customers)
    share = len(customers) / len({c for _, c in window})
    assert 0.2 < share < 0.3  # holdout=0.25 of the customers
    return customers


def test_an_entity_split_keeps_each_customer_on_one_side_and_is_reproducible(home, tmp_path):
    end = date(2025, 5, 1)
    pipeline = entity_pipeline(tmp_path, 7)
    first, again = (run(pipeline, ("train", "evaluate"), end, 21) for _ in range(2))
    assert (first["train"]["version"], again["train"]["version"]) == ("1", "2")

    window = window_rows(home, "order_id, customer_id", end - timedelta(days=21), end)
    held = holdout_of("1", first["train"]["model"])
    customers = held_out_customers(held, window)
    assert first["train"]["rows_train"] + first["train"]["rows_holdout"] == len(window)
    assert first["evaluate"]["rows"] == first["train"]["rows_holdout"] == held.num_rows
    # The training rows are the rest of the window: no customer is on both sides.
    train_customers = {c for _, c in window if c not in customers}
    assert len([c for _, c in window if c in train_customers]) == first["train"]["rows_train"]
    assert not customers & train_customers
    assert held.num_rows > len(customers)  # some held-out customers have several orders: the check bites

    # The same definition and window: the same split; another seed: another split, as whole.
    assert holdout_of("2", first["train"]["model"]).equals(held)
    assert again["train"]["metrics"] == first["train"]["metrics"]
    other = run(entity_pipeline(tmp_path, 8), ("train",), end, 21)["train"]
    assert held_out_customers(holdout_of(other["version"], other["model"]), window) != customers


# --- 3. training rows from a SQL file run in the warehouse, bound to the window ------------------------------

@pytest.fixture()
def sql_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "sql"
    (root / "ml").mkdir(parents=True)
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(root))
    return root


def test_training_rows_come_from_a_sql_file_bound_to_the_window(home, tmp_path, sql_root):
    (sql_root / "ml" / "big_orders.sql").write_text(
        "-- orders over 20 (a filter the table mode cannot express), in the window\n"
        "SELECT order_id, ordered_at, channel, segment, country, amount, is_lost\n"
        "FROM ml.order_features\n"
        "WHERE amount > 20 AND ordered_at >= :from_date AND ordered_at < :to_date\n")
    train = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())["steps"][0]
    train["data"] = {"sql": "ml/big_orders.sql", "days": 10}
    pipeline = definition(tmp_path, "sql_rows", [train])
    end = date(2025, 5, 1)
    result = run(pipeline, ("train",), end, 7)["train"]

    window = [r for r in window_rows(home, "order_id, amount, ordered_at", end - timedelta(days=10), end) if r[1] > 20]
    assert result["rows_train"] + result["rows_holdout"] == len(window)
    assert len(window) < len(window_rows(home, "order_id", end - timedelta(days=10), end))  # the filter bit
    held = holdout_of(result["version"], result["model"])
    stamps = sorted(held.column("ordered_at").to_pylist())
    assert datetime(2025, 4, 21) <= stamps[0] and stamps[-1] < datetime(2025, 5, 1)
    assert stamps == [r[2] for r in window[-result["rows_holdout"]:]]  # the window's latest rows, time split
    assert min(held.column("amount").to_pylist()) > 20

    # A parameter the window does not bind is named in the error.
    (sql_root / "ml" / "odd.sql").write_text("SELECT * FROM ml.order_features WHERE ordered_at >= :since\n")
    train["data"] = {"sql": "ml/odd.sql", "days": 10}
    from dagspec.stages import StepFailed

    with pytest.raises(StepFailed, match=r"unknown parameter\(s\) :since"):
        run(definition(tmp_path, "sql_odd", [train]), ("train",), end, 7)


def test_training_rows_may_come_from_inline_sql_the_same_as_a_file(home, tmp_path, sql_root):
    text = ("SELECT order_id, ordered_at, channel, segment, country, amount, is_lost FROM ml.order_features "
            "WHERE amount > 20 AND ordered_at >= :from_date AND ordered_at < :to_date")
    (sql_root / "ml" / "same.sql").write_text(text)
    train = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())["steps"][0]
    end = date(2025, 5, 1)
    train["data"] = {"query": text, "days": 10}
    inline = run(definition(tmp_path, "sql_inline", [train]), ("train",), end, 7)["train"]
    train["data"] = {"sql": "ml/same.sql", "days": 10}
    from_file = run(definition(tmp_path, "sql_file", [train]), ("train",), end, 7)["train"]
    assert (inline["rows_train"], inline["rows_holdout"]) == (from_file["rows_train"], from_file["rows_holdout"])
    assert holdout_of(inline["version"], inline["model"]).equals(holdout_of(from_file["version"], from_file["model"]))
    train["data"] = {"query": "SELECT * FROM ml.order_features WHERE ordered_at >= :since", "days": 10}
    from dagspec.stages import StepFailed

    with pytest.raises(StepFailed, match=r"the inline data query: unknown parameter\(s\) :since"):
        run(definition(tmp_path, "sql_inline_odd", [train]), ("train",), end, 7)


# --- 4. the champion's ROC curve beside the challenger's ----------------------------------------------------

def test_the_report_draws_the_champions_roc_curve_beside_the_challengers(home, tmp_path, monkeypatch):
    from dagspec.ml import report

    data = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())
    data["steps"][0]["data"]["days"] = 21
    pipeline = definition(tmp_path, "roc_model", data["steps"])
    drawn: list[dict] = []
    real = report.roc_png

    def spy(path, y, proba, champion_proba=None, **labels):
        drawn.append({"y": y, "proba": proba, "champion": champion_proba, **labels})
        return real(path, y, proba, champion_proba, **labels)

    monkeypatch.setattr(report, "roc_png", spy)
    steps = ("train", "evaluate", "promote")
    run(pipeline, steps, date(2025, 4, 1), 21)
    assert [d["champion"] for d in drawn] == [None, None]  # no champion yet: the challenger alone
    html = (home / "reports/roc_model/train/version_1/report.html").read_text()
    assert "champion v" not in html

    sql(home, "UPDATE ml.order_features SET is_lost = CASE WHEN (channel = 'store' AND amount > 250) "
              "OR (channel = 'web' AND amount < 100) THEN 1 ELSE 0 END WHERE batch_date >= DATE '2025-04-01'")
    drawn.clear()
    second = run(pipeline, steps, date(2025, 5, 1), 21)
    assert second["promote"]["promoted"] is True  # by now the alias points at v2: the curve is still v1's

    # Both reports (train's, then promote's) draw v1's curve, from v1's own predictions on v2's holdout.
    reg = registry()
    v1 = reg.load(reg.version("orders_lost", "1").run_id)
    held = holdout_of("2", "orders_lost").to_pandas()
    from dagspec.ml.metrics import positive_proba

    expected = positive_proba(v1, held[["amount", "channel", "segment", "country"]])
    assert len(drawn) == 2
    for d in drawn:
        assert d["label"] == "challenger v2" and d["champion_label"] == "champion v1"
        np.testing.assert_allclose(d["champion"], expected, rtol=1e-9)
        np.testing.assert_array_equal(d["y"], held["is_lost"].to_numpy())
        assert not np.allclose(d["champion"], d["proba"])
    folder = Path(second["train"]["report"]).parent
    assert (folder / "roc.png").read_bytes()[:8] == PNG
    text = (folder / "report.html").read_text()
    assert "challenger v2 and champion v1 on the same holdout rows" in text and 'src="roc.png"' in text
    assert "PROMOTED to champion" in text


def test_a_champion_of_another_task_is_not_compared_and_stays_champion(home, tmp_path):
    """The model's definition turns from regression into classification: the regression champion's metrics
    cannot be compared with a classifier's, so the challenger is not promoted over it (fail safe)."""
    steps = ("train", "evaluate", "promote")
    first = run(regression_pipeline(tmp_path), steps, date(2025, 4, 1), REG_DAYS)
    assert first["promote"]["promoted"] is True

    train = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())["steps"][0]
    train.update(model=REG_MODEL, data={"table": {"schema": "ml", "table": "order_features"}, "days": REG_DAYS})
    classifier = definition(tmp_path, "amount_model_as_classifier", [
        train, {"id": "evaluate", "kind": "evaluate", "input": "train"},
        {"id": "promote", "kind": "promote", "input": "evaluate", "primary": "roc_auc", "margin": 0.0}])
    second = run(classifier, steps, date(2025, 5, 1), REG_DAYS)
    assert set(second["evaluate"]["challenger"]) >= {"roc_auc", "log_loss"}
    assert not second["evaluate"]["champion"] and second["evaluate"]["champion_version"] == "1"
    note = registry().client.get_run(registry().version(REG_MODEL, "2").run_id).data.tags["dagspec.champion_note"]
    assert note == ("champion v1 cannot score this holdout: it is a regression model and the challenger "
                    "a classification one")
    assert second["promote"]["promoted"] is False
    assert str(registry().champion(REG_MODEL).version) == "1"


@pytest.mark.parametrize("estimator", sorted(ESTIMATORS))
def test_every_allow_listed_estimator_is_an_mlflow_model_within_the_trusted_types(estimator, tmp_path):
    """Each estimator of the allow-list, in dagspec's preprocessing pipeline, is written by MLflow's flavor with
    no trusted type outside dagspec's list, and loads back (checks, then the flavor) predicting the same."""
    import pandas as pd

    from dagspec.ml import features
    from dagspec.ml.model_files import TRUSTED_TYPES, folder_sha256, load_model_dir, save_model_dir
    from dagspec.spec.ml_steps import TrainStep

    task = ESTIMATORS[estimator][0]
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"amount": rng.gamma(2.0, 80.0, 400), "channel": pd.Series(rng.choice(["web", "store", None], 400),
                                                                                 dtype=object)})
    y = (X["amount"] > 150).astype(int).to_numpy() if task == "classification" else X["amount"].to_numpy() * 0.1
    params = {"n_estimators": 5} if "random_forest" in estimator else {}
    step = TrainStep.model_validate({
        "id": "train", "kind": "train", "model": "m", "estimator": estimator, "params": params, "target": "y",
        "features": [{"column": "amount", "type": "numeric"}, {"column": "channel", "type": "categorical"}],
        "data": {"table": {"schema": "ml", "table": "t"}}, "split": {"by": "time", "column": "at"}})
    model = features.build_pipeline(step).fit(X, y)
    trusted = save_model_dir(model, tmp_path / "model", X.head(3), {"amount"}, task)
    assert set(trusted) <= TRUSTED_TYPES
    loaded = load_model_dir(tmp_path / "model", folder_sha256(tmp_path / "model"))
    assert np.array_equal(loaded.predict(X), model.predict(X))
