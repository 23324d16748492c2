"""The model registry: MLflow tracking + model registry (the `champion` alias), models in MLflow's format.

Embedded default: a SQLite tracking store and a local artifact folder under $DAGSPEC_HOME/mlflow.
For scale, define the Airflow connection `dagspec_mlflow` (type http/https: a tracking server, or
any tracking URI in extra.tracking_uri). Each version's model is its training run's logged model: an MLflow
model directory (scikit-learn flavor, skops; earlier versions: a bare model.skops in the run's `model`
artifacts), pinned by digest at registration and verified before loading (see model_files).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagspec.connections import ConnectionNotFound, Resolver
from dagspec.ml.model_files import (
    FORMAT_MLFLOW,
    MODEL_FILE,
    TRUSTED_TYPES,
    UnsafeModel,
    file_sha256,
    load_model,
    load_model_dir,
    pinned_digest,
    save_model,
)
from dagspec.paths import data_home

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

REGISTRY_CONN_ID = "dagspec_mlflow"
CHAMPION = "champion"
CANARY = "canary"  # a staged challenger scoring a share of each batch (stages/ml/canary.py decides its fate)
MODEL_DIR = "model"  # the logged model's name; earlier versions: the run's artifact path holding model.skops
SHA256_TAG = "dagspec.model_sha256"  # the pin: the folder digest of a model directory, the sha256 of a bare file
FORMAT_TAG = "dagspec.model_format"  # FORMAT_MLFLOW for a model directory; absent: a bare model.skops
MODEL_ID_TAG = "dagspec.model_id"  # the run's MLflow logged model (MLflow 3), whose artifacts are the model directory

log = logging.getLogger("dagspec")


@dataclass
class Registry:
    tracking_uri: str
    artifact_root: str | None = None  # only for the embedded store: where experiments keep their files

    @classmethod
    def open(cls, resolver: Resolver) -> Registry:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # task logs are not terminals
        try:
            info = resolver(REGISTRY_CONN_ID)
        except ConnectionNotFound:
            home = data_home() / "mlflow"
            home.mkdir(parents=True, exist_ok=True)
            return cls(f"sqlite:///{home / 'mlflow.db'}", (home / "artifacts").as_uri())
        uri = info.extra.get("tracking_uri")
        if not uri:
            if info.conn_type not in ("http", "https", "mlflow"):
                raise ValueError(f"connection {REGISTRY_CONN_ID!r} has type {info.conn_type!r}: use http/https "
                                 "(an MLflow tracking server) or put a tracking URI in extra.tracking_uri")
            scheme = "https" if info.conn_type == "https" else "http"
            # A server behind a proxy at a sub-path (`mlflow server --static-prefix`): http://host/mlflow keeps it.
            path = f"/{info.schema.strip('/')}" if info.schema and info.schema.strip("/") else ""
            uri = f"{scheme}://{info.host}{f':{info.port}' if info.port else ''}{path}"
        if info.login:  # MLflow's client reads server credentials from its own variables only
            os.environ["MLFLOW_TRACKING_USERNAME"] = info.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = info.password or ""
        return cls(uri, info.extra.get("artifact_root"))

    @cached_property
    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def experiment_id(self, model: str) -> str:
        name = f"dagspec/{model}"
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = f"{self.artifact_root}/{model}" if self.artifact_root else None
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:  # another task created it a moment ago
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # --- runs and versions ------------------------------------------------------------------
    def start_run(self, model: str, tags: dict[str, str], run_name: str) -> str:
        run = self.client.create_run(self.experiment_id(model), tags=tags, run_name=run_name)
        return run.info.run_id

    def log(self, run_id: str, *, params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
            tags: dict[str, str] | None = None, step: int = 0, timestamp_ms: int | None = None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items() if not math.isnan(float(v))],
            params=[Param(k, str(v)[:6000]) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()],
        )

    def log_files(self, run_id: str, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(run_id, str(folder), artifact_path)

    def log_model_dir(self, run_id: str, folder: Path) -> str:
        """Upload an MLflow model directory as the run's logged model (MLflow 3's LoggedModel, what
        `mlflow.sklearn.log_model` makes, without the fluent API's global state); returns its id."""
        from mlflow.entities import LoggedModelStatus

        run = self.client.get_run(run_id)
        logged = self.client.create_logged_model(run.info.experiment_id, name=MODEL_DIR, source_run_id=run_id,
                                                 model_type="sklearn")
        try:
            self.client.log_model_artifacts(logged.model_id, str(folder))
        except BaseException:
            self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self.client.set_tag(run_id, MODEL_ID_TAG, logged.model_id)
        return logged.model_id

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")

    def register(self, model: str, run_id: str, tags: dict[str, str]) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(model, description="Managed by dagspec")
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                raise
        run = self.client.get_run(run_id)
        model_id = run.data.tags.get(MODEL_ID_TAG)
        source = self.model_location(run_id)
        # The stored files' digest, pinned on the run and the version: load() refuses any other files later.
        # (A run without a model gets no pin; loading it fails on the missing files anyway.)
        with tempfile.TemporaryDirectory(prefix="dagspec-model-") as tmp:
            try:
                fmt, digest = pinned_digest(self.download_model(run_id, Path(tmp)))
            except (MlflowException, OSError):
                fmt, digest = None, None
        if digest is not None:
            pins = {SHA256_TAG: digest, **({FORMAT_TAG: fmt} if fmt == FORMAT_MLFLOW else {})}
            for key, value in pins.items():
                self.client.set_tag(run_id, key, value)
            tags = {**tags, **pins}
        version = self.client.create_model_version(model, source, run_id, tags=tags, model_id=model_id)
        return str(version.version)

    def version(self, model: str, version: str) -> ModelVersion:
        return self.client.get_model_version(model, str(version))

    def find_version(self, model: str, run_key: str) -> ModelVersion:
        """The newest version a given train step made for a given window (its handoff to evaluate/promote)."""
        found = self.client.search_model_versions(f"name = '{_q(model)}' and tag.`dagspec.run_key` = '{_q(run_key)}'")
        if not found:
            raise LookupError(f"no version of model {model!r} was trained for {run_key}: did the train step run?")
        return max(found, key=lambda v: int(v.version))

    def champion(self, model: str) -> ModelVersion | None:
        return self.aliased(model, CHAMPION)

    def aliased(self, model: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(model, alias)
        except MlflowException:
            return None

    def set_alias(self, model: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(model, alias, str(version))

    def drop_alias(self, model: str, alias: str) -> None:
        self.client.delete_registered_model_alias(model, alias)

    def set_champion(self, model: str, version: str) -> None:
        self.client.set_registered_model_alias(model, CHAMPION, str(version))

    def tag_version(self, model: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model, str(version), key, str(value)[:5000])

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Every version, oldest first, with its run's metrics and whether it is the champion."""
        found = self.client.search_model_versions(f"name = '{_q(model)}'")
        champion, canary = self.champion(model), self.aliased(model, CANARY)
        rows = []
        for v in sorted(found, key=lambda v: int(v.version)):
            run = self.client.get_run(v.run_id)
            rows.append({
                "version": str(v.version), "run_id": v.run_id, "created": v.creation_timestamp,
                "metrics": dict(run.data.metrics), "tags": dict(v.tags),
                "champion": champion is not None and str(champion.version) == str(v.version),
                "canary": canary is not None and str(canary.version) == str(v.version),
            })
        return rows

    # --- files --------------------------------------------------------------------------------
    def download(self, run_id: str, path: str, into: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(into)))

    def model_location(self, run_id: str) -> str:
        """Where the run's model lives: its logged model's artifacts, or (earlier versions) the run's `model`."""
        run = self.client.get_run(run_id)
        model_id = run.data.tags.get(MODEL_ID_TAG)
        if model_id:
            return self.client.get_logged_model(model_id).artifact_location
        return f"{run.info.artifact_uri}/{MODEL_DIR}"

    def download_model(self, run_id: str, into: Path) -> Path:
        """The run's model folder, downloaded into `into`."""
        if not self.client.get_run(run_id).data.tags.get(MODEL_ID_TAG):
            return self.download(run_id, MODEL_DIR, into)
        import mlflow.artifacts

        staging = into / "download"
        staging.mkdir(parents=True, exist_ok=True)
        got = Path(mlflow.artifacts.download_artifacts(artifact_uri=self.model_location(run_id), dst_path=str(staging),
                                                       tracking_uri=self.tracking_uri))
        return got.rename(into / MODEL_DIR)  # named as the model, not as the store's `artifacts` folder

    def load(self, run_id: str) -> Any:
        """The run's model, verified against its pin: a model directory through MLflow's scikit-learn flavor,
        an earlier bare model.skops through skops. The format comes from the run's tags, not from the files
        found, so a bare archive cannot be swapped for a directory (nor the reverse) to dodge its pin."""
        tags = self.client.get_run(run_id).data.tags
        pinned = tags.get(SHA256_TAG)
        if pinned is None:
            log.warning("model of run %s was registered before dagspec pinned model hashes: its file is not "
                        "verified (retrain to pin it)", run_id)
        with tempfile.TemporaryDirectory(prefix="dagspec-model-") as tmp:
            try:
                if tags.get(FORMAT_TAG) == FORMAT_MLFLOW:
                    return load_model_dir(self.download_model(run_id, Path(tmp)), pinned)
                return load_model(self.download(run_id, f"{MODEL_DIR}/{MODEL_FILE}", Path(tmp)), pinned)
            except UnsafeModel as exc:  # which model: the run (and where MLflow keeps it)
                raise UnsafeModel(f"model of run {run_id} ({self.model_location(run_id)}): {exc}") from None

    def read_json(self, run_id: str, path: str) -> Any:
        with tempfile.TemporaryDirectory(prefix="dagspec-model-") as tmp:
            return json.loads(self.download(run_id, path, Path(tmp)).read_text())


def _q(text: str) -> str:
    return text.replace("'", "")


# The model file helpers, importable from here as before.
__all__ = ["CANARY", "CHAMPION", "FORMAT_TAG", "MODEL_DIR", "MODEL_ID_TAG", "MODEL_FILE", "SHA256_TAG", "TRUSTED_TYPES",
           "Registry", "UnsafeModel", "file_sha256", "load_model", "save_model"]
