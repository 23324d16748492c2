"""Hostile model artefacts: a registered MLflow model directory whose files are swapped, added to or rewritten in
the artifact store, an MLmodel that widens its own trusted types or asks for pickle, a skops file holding an
untrusted type, and a pinned directory replaced by a bare archive: each is refused before anything is loaded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

X = pd.DataFrame({"amount": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "channel": ["web", "store", "web", None, "store", "web"]})
Y = [0, 0, 1, 1, 1, 0]


class Sneaky:
    """Stands for code a model file could smuggle in."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def pipeline(C: float = 1.0):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cat = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                    ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    pre = ColumnTransformer([("amount", SimpleImputer(), ["amount"]), ("channel", cat, ["channel"])])
    return Pipeline([("pre", pre), ("model", LogisticRegression(C=C))]).fit(X, Y)


@pytest.fixture()
def registered(data_home, tmp_path):
    """(registry, run id, the stored model folder) of one version logged and registered as train does it."""
    from dagspec.connections import env_resolver
    from dagspec.ml.model_files import save_model_dir
    from dagspec.ml.registry import MODEL_DIR, Registry

    reg = Registry.open(env_resolver)
    run_id = reg.start_run("hostile_model", {}, "hostile")
    save_model_dir(pipeline(), tmp_path / MODEL_DIR, X.head(2), {"amount"}, "classification")
    reg.log_model_dir(run_id, tmp_path / MODEL_DIR)
    reg.register("hostile_model", run_id, {})
    reg.finish(run_id)
    stored = Path(reg.model_location(run_id).removeprefix("file://"))
    assert reg.load(run_id).predict(X).tolist() == pipeline().predict(X).tolist()
    return reg, run_id, stored


def _rewrite_mlmodel(folder: Path, change) -> None:
    path = folder / "MLmodel"
    doc = yaml.safe_load(path.read_text())
    change(doc["flavors"]["sklearn"])
    path.write_text(yaml.safe_dump(doc))


def test_a_swapped_model_file_in_a_registered_folder_is_refused(registered):
    from dagspec.ml.model_files import save_model
    from dagspec.ml.registry import UnsafeModel

    reg, run_id, stored = registered
    save_model(pipeline(C=0.01), stored / "model.skops")  # a valid model of trusted types: only the pin tells
    swapped = (r"model of run \w+ \(.*\): refusing to load model/: it is not the folder registered \(sha256 .* "
               r"pinned at registration\); it was replaced in the artifact store")
    with pytest.raises(UnsafeModel, match=swapped):
        reg.load(run_id)


@pytest.mark.parametrize("tamper", ["extra file", "renamed file", "example rewritten"])
def test_any_change_to_the_registered_folder_is_refused(registered, tamper):
    from dagspec.ml.registry import UnsafeModel

    reg, run_id, stored = registered
    if tamper == "extra file":
        (stored / "sitecustomize.py").write_text("import os\n")
    elif tamper == "renamed file":
        (stored / "input_example.json").rename(stored / "input_example.json.bak")
    else:
        (stored / "input_example.json").write_text('{"columns": [], "data": []}')
    with pytest.raises(UnsafeModel, match="it is not the folder registered"):
        reg.load(run_id)


def test_an_mlmodel_that_widens_its_trusted_types_or_asks_for_pickle_is_refused(registered):
    from dagspec.ml.model_files import load_model_dir
    from dagspec.ml.registry import UnsafeModel

    reg, run_id, stored = registered
    _rewrite_mlmodel(stored, lambda f: f["skops_trusted_types"].append("posix.system"))
    with pytest.raises(UnsafeModel, match="its MLmodel trusts type\\(s\\) dagspec does not: posix.system"):
        reg.load(run_id)
    with pytest.raises(UnsafeModel, match="posix.system"):
        load_model_dir(stored, None)  # even without a pin
    _rewrite_mlmodel(stored, lambda f: f.update(serialization_format="cloudpickle", skops_trusted_types=[]))
    with pytest.raises(UnsafeModel, match="serialised as 'cloudpickle'; dagspec loads skops only"):
        load_model_dir(stored, None)
    _rewrite_mlmodel(stored, lambda f: f.update(serialization_format="skops", pickled_model="../../escape.skops"))
    with pytest.raises(UnsafeModel, match="names no model file inside the folder"):
        load_model_dir(stored, None)


def test_a_skops_file_holding_an_untrusted_type_is_refused(registered):
    from dagspec.ml.model_files import load_model_dir, save_model
    from dagspec.ml.registry import UnsafeModel

    reg, run_id, stored = registered
    save_model({"model": Sneaky.__new__(Sneaky)}, stored / "model.skops")
    message = "refusing to load model.skops: it holds type\\(s\\) dagspec does not trust: .*Sneaky"
    with pytest.raises(UnsafeModel, match=message):
        reg.load(run_id)
    with pytest.raises(UnsafeModel, match=message):
        load_model_dir(stored, None)  # the type check does not rest on the pin
    # ... nor does it rest on the MLmodel: listing the type there is a widening dagspec refuses.
    _rewrite_mlmodel(stored, lambda f: f["skops_trusted_types"].append(f"{Sneaky.__module__}.Sneaky"))
    with pytest.raises(UnsafeModel, match="its MLmodel trusts type\\(s\\) dagspec does not: .*Sneaky"):
        load_model_dir(stored, None)


def test_a_pinned_folder_replaced_by_a_bare_archive_is_not_read_as_one(registered):
    """The format comes from the run's tags: a bare model.skops where a directory was registered is refused."""
    from dagspec.ml.model_files import save_model
    from dagspec.ml.registry import UnsafeModel

    reg, run_id, stored = registered
    shutil.rmtree(stored)
    stored.mkdir()
    save_model(pipeline(C=0.01), stored / "model.skops")
    with pytest.raises(UnsafeModel, match="MLmodel is not an MLflow scikit-learn model"):
        reg.load(run_id)


def test_a_not_a_zip_skops_file_in_a_folder_is_refused(registered):
    import pickle

    from dagspec.ml.registry import UnsafeModel

    reg, run_id, stored = registered
    (stored / "model.skops").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeModel, match="model.skops is not a skops model file .*never loads pickles"):
        reg.load(run_id)


# --- the monitor step: labels are read, never written; identifiers stay identifiers ------------------------

def _monitored(**labels) -> dict:
    import json

    from support.ml_runs import ROOT

    data = json.loads((ROOT / "dags" / "definitions" / "orders_model.json").read_text())
    base = {"data": {"table": {"schema": "ml", "table": "order_features"}}, "keys": ["order_id"], "label": "is_lost",
            "delay_days": 7, "metric": "roc_auc", "threshold": 0.6}
    data["steps"].append({"id": "monitor_scores", "kind": "monitor", "model": "orders_lost", "input": "score_orders",
                          "labels": {**base, **labels}})
    return data


def _problems(data: dict, **kwargs) -> dict[str, str]:
    import json

    from dagspec.spec import DefinitionError, parse_definition

    with pytest.raises(DefinitionError) as info:
        parse_definition(json.dumps(data).encode(), "monitored.json", **kwargs)
    return {p.path: p.message for p in info.value.problems}


@pytest.mark.parametrize(("labels", "path", "message"), [
    ({"label": 'is_lost"; DROP TABLE ml.order_features; --'}, "$.steps[5].labels.label", "is not a plain identifier"),
    ({"keys": ["order_id) OR (1=1"]}, "$.steps[5].labels.keys[0]", "is not a plain identifier"),
    ({"data": {"table": {"schema": "ml", "table": "x\"; DELETE FROM y"}}}, "$.steps[5].labels.data.table.table",
     "is not a plain identifier"),
    ({"data": {"input": "order_features"}}, "$.steps[5].labels", "not a step's output"),
    ({"label": "order_id"}, "$.steps[5].labels", "is also a key"),
    ({"delay_days": 0}, "$.steps[5].labels.delay_days", "greater than or equal to 1"),
])
def test_hostile_monitor_labels_are_refused_at_their_json_path(labels, path, message):
    got = _problems(_monitored(**labels))
    assert path in got and message in got[path], got


def test_a_monitor_must_read_a_score_step_and_thresholds_stay_in_range():
    data = _monitored()
    data["steps"][5].update(input="order_features", thresholds={"prediction_psi": -1, "nulls": 0.1})
    got = _problems(data)
    assert "is a transform step" in got["$.steps[5].input"]
    assert "greater than 0" in got["$.steps[5].thresholds.prediction_psi"]
    assert "unknown key 'nulls'" in got["$.steps[5].thresholds.nulls"]


@pytest.mark.parametrize("query", [
    "DELETE FROM ml.order_features WHERE ordered_at >= :from_date",
    "WITH gone AS (SELECT 1) DELETE FROM ml.order_features",
    "UPDATE ml.order_features SET is_lost = 1",
    "DROP TABLE ml.order_features",
])
def test_a_labels_query_that_is_not_a_select_never_reaches_the_warehouse(data_home, query):
    import json
    from datetime import UTC, datetime

    from dagspec.spec import parse_definition
    from dagspec.stages import StepFailed
    from dagspec.stages.context import RunContext
    from dagspec.stages.ml.monitor_labels import select_only
    from dagspec.windows import Window

    pipeline = parse_definition(json.dumps(_monitored(data={"query": query})).encode(), "monitored.json")
    step = pipeline.step("monitor_scores")
    window = Window(datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 2, tzinfo=UTC))
    with pytest.raises(StepFailed, match=r"labels \(the inline data query\) must be one SELECT, not (DELETE|UPDATE|DROP)"):
        select_only(RunContext(pipeline, window), step.labels, window, "duckdb")
    select_only(RunContext(pipeline, window), step.labels.model_copy(update={"data": step.labels.data.model_copy(
        update={"query": "SELECT order_id, is_lost FROM ml.order_features WHERE ordered_at >= :from_date"})}),
        window, "duckdb")  # a SELECT passes


def test_a_labels_query_with_a_second_statement_is_a_line_at_validate():
    got = _problems(_monitored(data={"query": "SELECT order_id, is_lost FROM ml.order_features; DROP TABLE x"}),
                    check_sql=True)
    assert "2 statements" in got["$.steps[5].labels.data.query"]


def test_a_labels_sql_file_that_is_missing_or_outside_the_sql_folder_is_named(tmp_path):
    got = _problems(_monitored(data={"sql": "labels/missing.sql"}), sql_dir=tmp_path)
    assert "does not exist" in got["$.steps[5].labels.data.sql"]
    got = _problems(_monitored(data={"sql": "../../etc/passwd.sql"}))
    assert "is not a .sql file path" in got["$.steps[5].labels.data.sql"]
