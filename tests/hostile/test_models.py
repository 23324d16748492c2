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
