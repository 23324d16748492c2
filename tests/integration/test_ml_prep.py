"""Allow-listed preprocessing (each transformer in the fitted pipeline, through MLflow's flavor and back) and a
multi-class target trained, evaluated, promoted and scored against the real MLflow tracking server."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.expected import warehouse_rows
from support.ml_runs import ROOT, registry, utc

from dagspec.errors import StepFailed
from dagspec.ml import features
from dagspec.ml.model_files import TRUSTED_TYPES, folder_sha256, load_model_dir, save_model_dir
from dagspec.runner import run_step
from dagspec.spec import load_definition
from dagspec.spec.ml_preprocess import MODELS
from dagspec.spec.ml_steps import MULTICLASS_METRICS, TrainStep

SEGMENTS = ["consumer", "corporate", "small_business"]
CHAIN = {  # one of each allow-listed name, on the feature type it works on
    "log1p": ("amount", [{"name": "log1p"}]),
    "clip": ("amount", [{"name": "clip", "min": 20, "max": 300}]),
    "power": ("amount", [{"name": "power", "method": "box-cox"}]),
    "quantile_bins": ("amount", [{"name": "quantile_bins", "n_bins": 4}]),
    "polynomial": ("amount", [{"name": "polynomial", "degree": 3}]),
    "target_encoding": ("channel", [{"name": "target_encoding", "smooth": 5.0, "cv": 3}]),
}


def train_step(preprocess: dict[str, list], estimator: str = "logistic_regression") -> TrainStep:
    return TrainStep.model_validate({
        "id": "train", "kind": "train", "model": "m", "estimator": estimator, "target": "y",
        "features": [{"column": "amount", "type": "numeric", "preprocess": preprocess.get("amount", [])},
                     {"column": "channel", "type": "categorical", "preprocess": preprocess.get("channel", [])}],
        "data": {"table": {"schema": "ml", "table": "t"}}, "split": {"by": "time", "column": "at"}})


def test_the_chain_covers_the_allow_list():
    assert set(CHAIN) == set(MODELS)


@pytest.mark.parametrize("name", sorted(CHAIN))
@pytest.mark.parametrize("classes", [2, 3])
def test_each_preprocessing_changes_the_pipeline_and_survives_save_and_load(name, classes, tmp_path):
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"amount": rng.gamma(2.0, 80.0, 600),
                      "channel": pd.Series(rng.choice(["web", "store", "mobile", None], 600), dtype=object)})
    y = np.digitize(X["amount"], [100, 200][: classes - 1]) if classes == 3 else (X["amount"] > 150).astype(int).to_numpy()
    column, chain = CHAIN[name]
    plain = features.build_pipeline(train_step({})).fit(X, y)
    model = features.build_pipeline(train_step({column: chain})).fit(X, y)

    inner = model.named_steps["prepare"].named_transformers_[column]
    stage = "target_encode" if name == "target_encoding" else f"0_{name}"
    assert stage in inner.named_steps, inner.named_steps  # the allow-listed transformer is in the fitted pipeline
    before, after = plain.named_steps["prepare"].transform(X), model.named_steps["prepare"].transform(X)
    assert before.shape != after.shape or not np.allclose(before, after)

    trusted = save_model_dir(model, tmp_path / "model", X.head(3), {"amount"}, "classification")
    assert set(trusted) <= TRUSTED_TYPES and (name == "clip") == ("numpy.clip" in trusted)
    assert (name == "target_encoding") == ("sklearn.model_selection._split.KFold" in trusted)
    loaded = load_model_dir(tmp_path / "model", folder_sha256(tmp_path / "model"))
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_clip_and_log1p_compute_what_they_say():
    X = pd.DataFrame({"amount": [-5.0, 10.0, 1000.0], "channel": ["a", "b", "a"]})
    step = train_step({"amount": [{"name": "clip", "min": 0, "max": 100}, {"name": "log1p"}]})
    step.features[0].scale = "none"
    prepared = features.build_pipeline(step).named_steps["prepare"].fit_transform(X, [0, 1, 0])
    assert prepared[:, 0].tolist() == pytest.approx(np.log1p([0.0, 10.0, 100.0]).tolist())


# --- a 3-class target end to end ----------------------------------------------------------------------------------

def segment_pipeline(tmp_path: Path, model: str, primary: str = "f1_macro", classes: list | None = SEGMENTS,
                     monitor: dict | None = None):
    data = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())
    table = {"table": {"schema": "ml", "table": "order_features"}, "time_column": "ordered_at"}
    train = {"id": "train", "kind": "train", "model": model, "estimator": "logistic_regression",
             "params": {"max_iter": 1000}, "target": "segment", "data": {**table, "days": 28},
             "features": [{"column": "amount", "type": "numeric", "preprocess": [
                              {"name": "clip", "min": 0, "max": 2000}, {"name": "log1p"}]},
                          {"column": "channel", "type": "categorical", "preprocess": [{"name": "target_encoding"}]},
                          {"column": "country", "type": "categorical"},
                          {"column": "is_lost", "type": "numeric", "scale": "none"}],
             "split": {"by": "time", "column": "ordered_at", "holdout": 0.25}}
    if classes is not None:
        train["classes"] = classes
    data.update(dag_id=f"{model}_pipe", steps=[
        train, {"id": "evaluate", "kind": "evaluate", "input": "train"},
        {"id": "promote", "kind": "promote", "input": "evaluate", "primary": primary,
         "guards": [{"metric": "log_loss", "max_degradation": 0.05}], "minimums": {"accuracy": 0.2}},
        {"id": "score", "kind": "score", "model": model, "keys": ["order_id"], "data": table,
         "output": {"table": {"schema": "ml", "table": f"{model}_scores"}}}, *([monitor] if monitor else [])])
    path = tmp_path / f"{model}.json"
    path.write_text(json.dumps(data))
    return load_definition(path)


def test_a_three_class_model_trains_promotes_and_scores_on_the_server(home, registry_server, tmp_path):
    model = f"segment_{uuid.uuid4().hex[:8]}"
    pipeline = segment_pipeline(tmp_path, model)
    end = date(2025, 4, 1)
    done = {s: run_step(pipeline, s, utc(end) - timedelta(days=7), utc(end)) for s in ("train", "evaluate", "promote")}
    ev = done["evaluate"]
    assert set(done["train"]["metrics"]) == set(ev["challenger"]) == set(MULTICLASS_METRICS)
    assert all(0 <= ev["challenger"][m] <= 1 for m in MULTICLASS_METRICS if m != "log_loss")
    per = ev["per_class"]
    assert per["classes"] == SEGMENTS and sum(map(sum, per["confusion"])) == ev["rows"] == sum(per["support"])
    # accuracy is the confusion matrix's diagonal over the rows
    assert ev["challenger"]["accuracy"] == pytest.approx(sum(per["confusion"][i][i] for i in range(3)) / ev["rows"])
    decision = done["promote"]
    assert decision["promoted"] is True and decision["primary"] == "f1_macro"
    assert str(registry().champion(model).version) == decision["version"]
    report = Path(done["train"]["report"]).read_text()
    assert "Per class (challenger)" in report and "predicted small_business" in report

    day = date(2025, 4, 2)
    scored = run_step(pipeline, "score", utc(day), utc(day + timedelta(days=1)))
    db = home / "warehouse.duckdb"
    columns = [r[0] for r in warehouse_rows(db, "SELECT column_name FROM information_schema.columns WHERE "
                                            f"table_name = '{model}_scores' ORDER BY ordinal_position")]
    assert columns == ["order_id", "prediction", "probability", "model_version", "batch_date"]
    rows = warehouse_rows(db, f"SELECT order_id, prediction, probability, model_version FROM ml.{model}_scores "
                          "ORDER BY order_id")
    assert len(rows) == scored["rows"][day.isoformat()] > 0

    # The same champion, loaded on its own, gives the same top class and probability for the same rows.
    champ = registry().load(registry().champion(model).run_id)
    feats = warehouse_rows(db, "SELECT order_id, amount, channel, country, is_lost FROM ml.order_features WHERE "
                           "ordered_at >= ? AND ordered_at < ? ORDER BY order_id",
                           [utc(day).replace(tzinfo=None), utc(day + timedelta(days=1)).replace(tzinfo=None)])
    X = pd.DataFrame([r[1:] for r in feats], columns=["amount", "channel", "country", "is_lost"]).astype(
        {"amount": float, "is_lost": float, "channel": object, "country": object})
    proba = champ.predict_proba(X)
    assert [r[0] for r in rows] == [r[0] for r in feats]
    assert [r[1] for r in rows] == [SEGMENTS[i] for i in proba.argmax(axis=1)]
    assert [r[2] for r in rows] == pytest.approx(proba.max(axis=1).tolist())
    assert {r[3] for r in rows} == {int(decision["version"])}


def test_a_binary_metric_on_a_target_found_multi_class_at_train_time_is_refused(home, registry_server, tmp_path):
    model = f"segment_{uuid.uuid4().hex[:8]}"
    pipeline = segment_pipeline(tmp_path, model, primary="roc_auc", classes=None)  # validate cannot know
    end = date(2025, 4, 1)
    with pytest.raises(StepFailed, match=r"target 'segment' has 3 class\(es\).*steps\.2\.primary: roc_auc is not "
                       r"measured for a multi-class target.*use one of: accuracy, f1_macro"):
        run_step(pipeline, "train", utc(end) - timedelta(days=7), utc(end))
    assert registry_server["client"].search_registered_models(f"name = '{model}'") == []


def test_a_three_class_model_is_monitored_on_its_realised_accuracy_and_macro_f1(home, registry_server, tmp_path):
    from sklearn.metrics import accuracy_score, f1_score

    model = f"segment_{uuid.uuid4().hex[:8]}"
    monitor = {"id": "monitor", "kind": "monitor", "model": model, "input": "score",
               "labels": {"data": {"query": "SELECT order_id, segment FROM ml.order_features WHERE ordered_at >= "
                                   ":from_date AND ordered_at < :to_date"}, "keys": ["order_id"], "label": "segment",
                          "delay_days": 1, "metric": "f1_macro", "threshold": 0.99}}
    pipeline = segment_pipeline(tmp_path, model, classes=None, monitor=monitor)  # classes known only once trained
    end = date(2025, 4, 1)
    for s in ("train", "evaluate", "promote"):
        run_step(pipeline, s, utc(end) - timedelta(days=7), utc(end))
    champ = registry().champion(model)
    assert json.loads(registry().client.get_run(champ.run_id).data.tags["dagspec.classes"]) == SEGMENTS
    run_step(pipeline, "score", utc(end), utc(end + timedelta(days=3)))
    result = run_step(pipeline, "monitor", utc(end + timedelta(days=1)), utc(end + timedelta(days=3)))
    realised = result["batches"]["2025-04-02"]["realised"]
    joined = warehouse_rows(home / "warehouse.duckdb", f"SELECT f.segment, s.prediction FROM ml.{model}_scores s "
                            "JOIN ml.order_features f USING (order_id) WHERE s.batch_date = ?", [end])
    truth, guess = [r[0] for r in joined], [r[1] for r in joined]
    assert realised["batch_date"] == "2025-04-01" and realised["model_version"] == str(champ.version)
    assert realised["rows"] == len(joined) > 0 and realised["metrics"]["unknown_labels"] == 0
    f1 = f1_score(truth, guess, average="macro", labels=SEGMENTS, zero_division=0)
    assert realised["metrics"]["accuracy"] == pytest.approx(accuracy_score(truth, guess))
    assert realised["metrics"]["f1_macro"] == pytest.approx(f1) and "roc_auc" not in realised["metrics"]
    assert "log_loss" not in realised["metrics"]  # the table keeps the top class's probability only
    assert result["reasons"][0] == (f"2025-04-02: realised f1_macro {f1:.4f} of v{champ.version} on batch "
                                    f"2025-04-01 ({len(joined)} labelled rows) is worse than 0.99")

    # The same numbers on the version's MLflow run, one point per batch date (step: the date's ordinal); a re-run
    # of the dates logs no second point.
    run_step(pipeline, "monitor", utc(end + timedelta(days=1)), utc(end + timedelta(days=3)))
    client = registry_server["client"]
    history = {m: [(p.step, p.value) for p in client.get_metric_history(champ.run_id, f"monitor.{m}")]
               for m in ("realised.f1_macro", "realised.accuracy", "prediction_psi", "rows")}
    days = [date(2025, 4, n).toordinal() for n in (1, 2, 3)]
    batches = result["batches"]
    assert sorted(history["realised.f1_macro"]) == [(days[0], pytest.approx(f1)), (
        days[1], pytest.approx(batches["2025-04-03"]["realised"]["metrics"]["f1_macro"]))]
    assert sorted(history["realised.accuracy"])[0] == (days[0], pytest.approx(accuracy_score(truth, guess)))
    assert sorted(history["prediction_psi"]) == [(days[i], pytest.approx(batches[f"2025-04-0{i + 1}"]["prediction"]["psi"]))
                                                 for i in (1, 2)]
    assert sorted(history["rows"]) == [(days[i], batches[f"2025-04-0{i + 1}"]["volume"]["rows"]) for i in (1, 2)]

    # The version's training report shows its own monitoring history; the copy on its MLflow run too.
    folder = home / "reports" / f"{model}_pipe" / "train" / f"version_{champ.version}"
    assert (folder / "monitor.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "report.html").read_text()
    assert page.count('<img src="monitor.png"') == 1 and "Per class (challenger)" in page
    copied = {a.path for a in client.list_artifacts(champ.run_id, "report")}
    assert {"report/monitor.png", "report/report.html"} <= copied
    # A training run whose tags name a folder out of the reports is not followed.
    client.set_tag(champ.run_id, "dagspec.dag_id", "../../outside")
    (folder / "monitor.png").unlink()
    run_step(pipeline, "monitor", utc(end + timedelta(days=1)), utc(end + timedelta(days=2)))
    assert not (folder / "monitor.png").exists() and not list(home.parent.glob("**/outside"))

    # A 0/1 metric cannot judge it: refused at run time, at the metric's JSON path, with the ones that can.
    binary = segment_pipeline(tmp_path, model, classes=None,
                              monitor={**monitor, "labels": {**monitor["labels"], "metric": "roc_auc"}})
    with pytest.raises(StepFailed, match=r"monitor monitor: steps\[4\]\.labels\.metric: the realised roc_auc is not "
                       r"measured for a multi-class model .*use one of: accuracy, f1_macro"):
        run_step(binary, "monitor", utc(end + timedelta(days=1)), utc(end + timedelta(days=2)))
