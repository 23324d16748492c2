"""Model files: an MLflow model directory of the scikit-learn flavor in skops format (today's format), and the
bare `model.skops` archive of earlier versions (still read).

Both are verified before anything is deserialised: the digest pinned at registration (a folder digest for a
model directory, the file's sha256 for a bare archive), then every type inside the skops archive against
TRUSTED_TYPES. The trusted types an MLmodel file lists are not believed: a crafted MLmodel could list anything,
so a list wider than dagspec's own allow-list is refused too. Only then is the model loaded, through MLflow's
scikit-learn flavor (`mlflow.sklearn.load_model`) for a model directory. Plain pickles are never read.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.errors import StepFailed

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

MODEL_FILE = "model.skops"  # the bare archive of earlier versions (and the data file's name inside a model dir)
MLMODEL = "MLmodel"
FORMAT_MLFLOW = "mlflow-sklearn-skops"  # the value of the run's FORMAT_TAG for a model directory
# Beyond skops' own defaults (numpy, scikit-learn estimators), only what the allow-listed estimators hold.
TRUSTED_TYPES = frozenset({
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "numpy.clip",  # the `clip` preprocessing's function (a FunctionTransformer holds it); numpy.log1p is a ufunc
    "sklearn.model_selection._split.KFold",  # target_encoding's seeded splitter (data only: folds, seed)
})


class UnsafeModel(StepFailed):
    """A model file that is not a skops archive, holds types dagspec does not trust, or is not the one pinned."""


@contextmanager
def quiet() -> Iterator[None]:
    """skops finds a function's module by probing every loaded module; Airflow's shims warn on each probe."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# --- digests ------------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_sha256(folder: Path) -> str:
    """One sha256 over every file of a folder, in sorted relative-path order: for each file its POSIX path,
    a NUL, its size in decimal, a NUL, then its bytes. A changed, added, removed or renamed file changes it."""
    digest = hashlib.sha256()
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.relative_to(folder).as_posix())
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def pinned_digest(folder: Path) -> tuple[str, str | None]:
    """(format, digest) of a downloaded `model` folder: a model directory, or a bare archive (None: no file)."""
    if (folder / MLMODEL).is_file():
        return FORMAT_MLFLOW, folder_sha256(folder)
    bare = folder / MODEL_FILE
    return "skops", file_sha256(bare) if bare.is_file() else None


# --- checks -------------------------------------------------------------------------------------------------
def untrusted_types(path: Path) -> list[str]:
    """The types skops would not load by default, refused when outside TRUSTED_TYPES; not a skops archive: refused."""
    import zipfile

    import skops.io as sio

    with quiet():
        try:
            found = sio.get_untrusted_types(file=path)
        except (zipfile.BadZipFile, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise UnsafeModel(f"{path.name} is not a skops model file ({type(exc).__name__}); dagspec never loads "
                              "pickles") from None
    unknown = sorted(set(found) - TRUSTED_TYPES)
    if unknown:
        raise UnsafeModel(f"refusing to load {path.name}: it holds type(s) dagspec does not trust: {', '.join(unknown)}")
    return sorted(found)


def _refuse_swap(what: str, got: str, pinned: str) -> None:
    raise UnsafeModel(f"refusing to load {what}: it is not the {'folder' if what.endswith('/') else 'file'} "
                      f"registered (sha256 {got[:16]}... where {pinned[:16]}... was pinned at registration); it was "
                      "replaced in the artifact store: retrain, or restore the registered files")


# --- bare skops archives (versions registered before the MLflow model format) -------------------------------
def save_model(obj: Any, path: Path) -> Path:
    """A bare skops archive (the earlier format; dagspec writes model directories now, see save_model_dir)."""
    import skops.io as sio

    with quiet():
        sio.dump(obj, path)
    return path


def load_model(path: Path, sha256: str | None = None) -> Any:
    """Load a bare skops archive; anything else, any untrusted type inside, or (given the sha256 pinned at
    registration) a file that is not the registered one, is refused before loading."""
    import skops.io as sio

    trusted = untrusted_types(path)
    if sha256 is not None and (got := file_sha256(path)) != sha256:
        _refuse_swap(path.name, got, sha256)
    with quiet():
        return sio.load(path, trusted=trusted)


# --- MLflow model directories ----------------------------------------------------------------------------------
def signature_of(X: pd.DataFrame, numeric: set[str], task: str, text_labels: bool = False) -> Any:
    """Inputs: numeric features as double, the others as string (None allowed); output: the class (long, or string
    for a multi-class target of text labels) or the regression value (double), as `predict` gives them."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    inputs = Schema([ColSpec(DataType.double if c in numeric else DataType.string, c) for c in X.columns])
    label = DataType.string if text_labels else DataType.long
    output = Schema([ColSpec(label if task == "classification" else DataType.double)])
    return ModelSignature(inputs=inputs, outputs=output)


def save_model_dir(model: Any, folder: Path, example: pd.DataFrame, numeric: set[str], task: str) -> list[str]:
    """Write `model` as an MLflow model directory (scikit-learn flavor, skops, signature, input example) at
    `folder` (which must not exist); returns the trusted types it lists, no more than the model holds."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    import sklearn
    import skops
    import skops.io as sio
    from sklearn.base import is_classifier

    text_labels = is_classifier(model) and model.classes_.dtype == object
    with quiet():
        needed = sio.get_untrusted_types(data=sio.dumps(model))
    unknown = sorted(set(needed) - TRUSTED_TYPES)
    if unknown:  # an allow-listed estimator grew a type: widen TRUSTED_TYPES knowingly, not here
        raise UnsafeModel(f"the trained model holds type(s) dagspec does not trust: {', '.join(unknown)}")
    requirements = [f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}",
                    f"skops=={skops.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}"]
    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Hint: Inferred schema contains integer column(s) ..."
        mlflow.sklearn.save_model(model, str(folder), serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                                  skops_trusted_types=sorted(needed), signature=signature_of(example, numeric, task, text_labels),
                                  input_example=example, pip_requirements=requirements)
    return sorted(needed)


def load_model_dir(folder: Path, sha256: str | None) -> Any:
    """Verify a downloaded MLflow model directory (skops format, trusted types, then the pinned digest) and load
    it through MLflow's scikit-learn flavor. Every check reads files only; nothing is deserialised before all pass."""
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        flavor = Model.load(str(folder / MLMODEL)).flavors["sklearn"]
    except (MlflowException, KeyError, OSError, ValueError) as exc:
        raise UnsafeModel(f"{folder.name}/{MLMODEL} is not an MLflow scikit-learn model ({exc})") from None
    if flavor.get("serialization_format") != "skops":
        raise UnsafeModel(f"refusing to load {folder.name}/: it is serialised as {flavor.get('serialization_format')!r}; "
                          "dagspec loads skops only, never pickles")
    listed = set(flavor.get("skops_trusted_types") or [])
    if wider := sorted(listed - TRUSTED_TYPES):
        raise UnsafeModel(f"refusing to load {folder.name}/: its MLmodel trusts type(s) dagspec does not: "
                          f"{', '.join(wider)}")
    data = folder / str(flavor.get("pickled_model", MODEL_FILE))
    if not data.resolve().is_relative_to(folder.resolve()) or not data.is_file():
        raise UnsafeModel(f"refusing to load {folder.name}/: its MLmodel names no model file inside the folder")
    inside = untrusted_types(data)
    if sha256 is not None and (got := folder_sha256(folder)) != sha256:
        _refuse_swap(f"{folder.name}/", got, sha256)
    if missing := sorted(set(inside) - listed):
        raise UnsafeModel(f"refusing to load {folder.name}/: {data.name} holds type(s) its MLmodel does not list: "
                          f"{', '.join(missing)}")
    with quiet():
        try:
            return mlflow.sklearn.load_model(str(folder))
        except MlflowException as exc:  # e.g. MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false in this environment
            raise UnsafeModel(f"MLflow refused to load {folder.name}/: {exc.message}") from None
