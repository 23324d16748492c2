"""The model registry on a real MLflow tracking server (started by the tests, see tests/support/mlflow_server.py):
`dagspec_mlflow` is an http connection, runs and versions live in the server's store, model files and reports
go through the server's artifact proxy, and the `champion` alias, `dagspec models list` and `rollback` work there."""

from __future__ import annotations

import json
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.ml_runs import DAILY, MODEL, RETRAIN, registry, retrain, sql, utc

pytestmark = pytest.mark.service
REPORT_FILES = {"report.html", "metric_history.png", "roc.png", "feature_importance.png"}


@pytest.fixture()
def server(registry_server):
    """The session's MLflow server, without the example model (support/ml_fixtures.py)."""
    return registry_server


def _shift(home: Path) -> None:
    """From April, store orders above 250 and web orders below 100 are the lost ones (a better model is possible)."""
    sql(home, "UPDATE ml.order_features SET is_lost = CASE WHEN (channel = 'store' AND amount > 250) "
              "OR (channel = 'web' AND amount < 100) THEN 1 ELSE 0 END WHERE batch_date >= DATE '2025-04-01'")


def test_open_keeps_the_servers_address_and_sub_path(monkeypatch):
    from dagspec.connections import env_resolver
    from dagspec.ml.registry import Registry

    for conn, uri in [("http://mlflow.internal:5000", "http://mlflow.internal:5000"),
                      ("https://mlflow.example.com/mlflow", "https://mlflow.example.com/mlflow"),
                      ("http://tools.internal:8080/tools/mlflow/", "http://tools.internal:8080/tools/mlflow")]:
        monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", conn)
        reg = Registry.open(env_resolver)
        assert (reg.tracking_uri, reg.artifact_root) == (uri, None)


def test_train_evaluate_promote_on_a_tracking_server(server, home):
    from mlflow.entities import LoggedModelStatus

    from dagspec.ml import features, metrics
    from dagspec.ml.model_files import MLMODEL, folder_sha256, load_model_dir
    from dagspec.ml.registry import FORMAT_TAG, MODEL_FILE, MODEL_ID_TAG, SHA256_TAG

    client, artifacts = server["client"], Path(server["artifacts"])
    reg = registry()
    assert reg.tracking_uri == server["url"]

    first = retrain(date(2025, 4, 1))
    assert first["train"]["version"] == "1" and first["promote"]["promoted"] is True
    _shift(home)
    second = retrain(date(2025, 7, 1))
    assert second["evaluate"]["champion_version"] == "1"  # the champion was fetched from the server and scored
    assert second["promote"]["promoted"] is True and second["promote"]["version"] == "2"

    # The server holds the versions, the alias and the decisions; nothing went to the embedded store.
    assert not (home / "mlflow").exists()
    assert client.get_model_version_by_alias(MODEL, "champion").version == "2"
    versions = {v.version: v for v in client.search_model_versions(f"name = '{MODEL}'")}
    assert sorted(versions) == ["1", "2"]
    assert [versions[v].tags["dagspec.decision"] for v in ("1", "2")] == ["promoted", "promoted"]
    run_id = second["train"]["run_id"]
    assert versions["2"].run_id == run_id and versions["2"].source.startswith("mlflow-artifacts:/")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert run.data.params["estimator"] == "logistic_regression"
    assert run.data.metrics["roc_auc"] == pytest.approx(second["evaluate"]["challenger"]["roc_auc"])

    # Artifacts went through the server's proxy into its artifacts destination.
    listed = {Path(a.path).name for a in client.list_artifacts(run_id, "report")}
    assert REPORT_FILES <= listed, listed
    # The model is an MLflow model directory (scikit-learn flavor, skops), pinned by its folder digest.
    # It is the run's logged model (MLflow 3's LoggedModel), and the version points at it.
    model_id = run.data.tags[MODEL_ID_TAG]
    logged = client.get_logged_model(model_id)
    assert logged.source_run_id == run_id and logged.status.to_int() == LoggedModelStatus.READY.to_int()
    assert versions["2"].source == logged.artifact_location
    # ... and the server linked the logged model to its version (the MLflow UI's model page shows both).
    assert [(v["name"], str(v["version"])) for v in json.loads(logged.tags["mlflow.modelVersions"])] == [(MODEL, "2")]
    assert {MLMODEL, MODEL_FILE, "input_example.json", "requirements.txt"} <= {
        Path(a.path).name for a in client.list_logged_model_artifacts(model_id)}
    on_server = list(artifacts.rglob(f"models/{model_id}/artifacts/{MLMODEL}"))
    assert len(on_server) == 1
    assert run.data.tags[FORMAT_TAG] == versions["2"].tags[FORMAT_TAG] == "mlflow-sklearn-skops"
    assert run.data.tags[SHA256_TAG] == versions["2"].tags[SHA256_TAG] == folder_sha256(on_server[0].parent)
    html = list(artifacts.rglob(f"{run_id}/artifacts/report/report.html"))
    assert len(html) == 1 and "promoted" in html[0].read_text()
    assert html[0].read_bytes() == Path(second["train"]["report"]).read_bytes()

    # The model round-trips: downloaded through the server, it is the same folder, loads through the safe loader
    # (the flavor, after the checks), and reproduces the metric the run logged on the same holdout rows.
    with tempfile.TemporaryDirectory() as tmp:
        got = reg.download_model(run_id, Path(tmp))
        assert folder_sha256(got) == run.data.tags[SHA256_TAG] and (got / MODEL_FILE).read_bytes()[:2] == b"PK"
        model = load_model_dir(got, run.data.tags[SHA256_TAG])
        holdout = pq.read_table(client.download_artifacts(run_id, "data/holdout.parquet", tmp))
    train = next(s for s in RETRAIN.steps if s.id == "train")
    df = features.frame(holdout, train.features, [train.target])
    X, y = df[[f.column for f in train.features]], features.target_values(df, train.target, train.task)
    assert len(model.predict(X)) == holdout.num_rows == second["train"]["rows_holdout"] > 0
    assert metrics.evaluate(model, X, y, train.task)["roc_auc"] == pytest.approx(run.data.metrics["roc_auc"])
    champion = registry().load(client.get_model_version_by_alias(MODEL, "champion").run_id)  # the steps' loader
    assert (champion.predict_proba(X) == model.predict_proba(X)).all()


def test_cli_lists_versions_and_rolls_the_champion_back_on_a_tracking_server(server, home, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    client = server["client"]
    monkeypatch.setenv("COLUMNS", "200")
    retrain(date(2025, 4, 1))
    _shift(home)
    retrain(date(2025, 7, 1))
    assert client.get_model_version_by_alias(MODEL, "champion").version == "2"

    listed = CliRunner().invoke(app, ["models", "list", MODEL])
    assert listed.exit_code == 0, listed.output
    lines = [line for line in listed.output.splitlines() if "promoted" in line]
    assert len(lines) == 2 and "2 ★" in lines[1] and "2025-07-01" in lines[1] and "★" not in lines[0]
    roc = client.get_run(client.get_model_version(MODEL, "2").run_id).data.metrics["roc_auc"]
    assert f"{roc:.4f}" in lines[1]

    rolled = CliRunner().invoke(app, ["models", "rollback", MODEL, "1"])
    assert rolled.exit_code == 0 and "champion is now version 1" in rolled.output, rolled.output
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"  # on the server
    assert "champion v2 -> v1" in client.get_model_version(MODEL, "1").tags["dagspec.rollback"]
    assert CliRunner().invoke(app, ["models", "rollback", MODEL, "9"]).exit_code == 1
    assert client.get_model_version_by_alias(MODEL, "champion").version == "1"

    # The next retrain measures its challenger against the rolled-back champion, fetched from the server.
    third = retrain(date(2025, 7, 15))
    assert third["evaluate"]["champion_version"] == "1" and third["train"]["version"] == "3"


def _scored_day(home: Path, day: date):
    """The features of one day's orders (as the champion reads them) and dagspec's scores for them, in order."""
    import duckdb

    from dagspec.ml import features
    from dagspec.runner import run_step

    run_step(DAILY, "score_orders", utc(day), utc(day + timedelta(days=1)))
    train = next(s for s in RETRAIN.steps if s.id == "train")
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT f.* FROM ml.order_features f JOIN ml.order_scores s USING (order_id) "
                           "WHERE s.batch_date = ? ORDER BY order_id", [day]).fetch_arrow_table()
        scores = con.execute("SELECT prediction, probability FROM ml.order_scores WHERE batch_date = ? "
                             "ORDER BY order_id", [day]).fetchall()
    finally:
        con.close()
    X = features.frame(rows, train.features)[[f.column for f in train.features]]
    return X, [p for p, _ in scores], [q for _, q in scores]


def test_mlflows_own_loader_gives_the_champion_the_score_step_used(server, home, monkeypatch):
    """`mlflow.pyfunc.load_model("models:/<name>@champion")` against the tracking server predicts what dagspec's
    score step wrote; the flavor's own loader gives the same probabilities; the version carries a signature."""
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import Model

    retrain(date(2025, 4, 1))
    X, predicted, probability = _scored_day(home, date(2025, 4, 2))
    assert len(X) == len(predicted) > 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["url"])
    uri = f"models:/{MODEL}@champion"
    pyfunc = mlflow.pyfunc.load_model(uri)
    assert pyfunc.metadata.get_input_schema().input_names() == list(X.columns)
    assert pyfunc.predict(X).tolist() == predicted
    assert mlflow.sklearn.load_model(uri).predict_proba(X)[:, 1].tolist() == pytest.approx(probability, abs=1e-12)
    info = Model.load(uri)
    assert info.flavors["sklearn"]["serialization_format"] == "skops" and info.saved_input_example_info
    assert info.flavors["sklearn"]["skops_trusted_types"] == ["numpy.dtype"]  # all a logistic regression needs


def test_mlflows_scoring_server_serves_the_champion_as_dagspec_scores(server, home):
    """`mlflow models serve -m models:/<name>@champion --env-manager local` (MLflow's own scoring server, in this
    venv) answers over HTTP with the predictions dagspec's score step wrote."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from support.service_cli import free_port

    retrain(date(2025, 4, 1))
    X, predicted, _ = _scored_day(home, date(2025, 4, 2))
    port, bin_dir = free_port(), Path(sys.executable).parent
    env = {**os.environ, "MLFLOW_TRACKING_URI": server["url"], "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    log = home / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        rows = X.astype(object).where(X.notna(), None).values.tolist()  # NaN -> null, as JSON has no NaN
        body = json.dumps({"dataframe_split": {"columns": list(X.columns), "data": rows}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert json.loads(resp.read())["predictions"] == predicted
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
