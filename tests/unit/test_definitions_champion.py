"""The Definitions page's model champion cells (issue 7), without an api-server: which definitions show a
model, which metric, what a registered champion looks like, and that a slow or unreachable registry turns the
cells into "unavailable" within the page's time budget instead of slowing or failing the page.
tests/e2e/test_definitions_page.py shows the same cells in a browser."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from dagspec.airflow import ui
from dagspec.connections import env_resolver
from dagspec.spec import load_definition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {p.name: load_definition(p) for p in sorted((ROOT / "dags" / "definitions").glob("*.json"))}
MODEL = "orders_lost"


def test_model_definitions_and_their_primary_metric():
    assert {name: ui.model_names(p) for name, p in EXAMPLES.items()} == {
        "customers_snapshot.json": [], "orders_daily.json": [],
        "orders_model.json": [MODEL], "orders_model_retrain.json": [MODEL]}
    # The scoring definition has no promote step: the metric comes from the retraining definition's.
    assert ui.primary_metrics(EXAMPLES.values()) == {MODEL: "roc_auc"}
    assert ui.primary_metrics([EXAMPLES["orders_model.json"]]) == {}


def test_an_embedded_registry_never_written_means_no_champion_yet_and_stays_unwritten(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSPEC_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", raising=False)
    assert ui.champion_cells({MODEL: "roc_auc"}, env_resolver) == {MODEL: {
        "model": MODEL, "state": "none", "version": None, "metric": "roc_auc", "value": None, "detail": None}}
    assert not (tmp_path / "mlflow" / "mlflow.db").exists()
    assert ui.champion_cells({}, env_resolver) == {}


def test_a_registered_champion_shows_its_version_and_primary_metric(tmp_path, monkeypatch):
    from dagspec.ml.registry import Registry

    monkeypatch.setenv("DAGSPEC_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", raising=False)
    reg = Registry.open(env_resolver)
    for roc_auc in (0.71, 0.7342):  # two versions; the second is the champion
        run_id = reg.start_run(MODEL, {"dagspec.task": "classification"}, run_name="test")
        reg.log(run_id, metrics={"roc_auc": roc_auc, "log_loss": 0.4})
        reg.finish(run_id)
        version = reg.register(MODEL, run_id, {})
    reg.set_champion(MODEL, version)

    cells = ui.champion_cells({MODEL: "roc_auc", "other_model": None}, env_resolver, wait=60)
    assert cells[MODEL] == {"model": MODEL, "state": "champion", "version": "2", "metric": "roc_auc",
                            "value": pytest.approx(0.7342), "detail": None}
    assert cells["other_model"]["state"] == "none"
    # No promote step names a metric: the task's headline metric, read from the champion's run.
    assert ui.champion_cells({MODEL: None}, env_resolver, wait=60)[MODEL]["metric"] == "roc_auc"


def test_a_registry_that_does_not_answer_shows_unavailable_within_the_budget(monkeypatch):
    # A tracking "server" that accepts connections and never answers.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    port = server.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "4")
    try:
        started = time.monotonic()
        cells = ui.champion_cells({MODEL: "roc_auc"}, env_resolver, wait=1.0)
        assert time.monotonic() - started < 3
        assert cells[MODEL]["state"] == "unavailable"
        assert cells[MODEL]["detail"] == "registry did not answer within 1 s"
        # A page load meanwhile does not pile up another stuck request.
        started = time.monotonic()
        again = ui.champion_cells({MODEL: "roc_auc"}, env_resolver, wait=1.0)
        assert time.monotonic() - started < 0.5
        assert again[MODEL]["state"] == "unavailable" and again[MODEL]["detail"] == "registry still not answering"
    finally:
        stop.set()
        acceptor.join(5)
        for conn in held:
            conn.close()
        server.close()
    lookup = ui._lookups[f"http://127.0.0.1:{port}"]
    lookup.join(60)
    assert not lookup.is_alive()
    # Nothing listens now: the registry fails fast and the cell says so.
    failed = ui.champion_cells({MODEL: "roc_auc"}, env_resolver, wait=30)
    assert failed[MODEL]["state"] == "unavailable" and failed[MODEL]["detail"].startswith("registry: ")


def test_a_bad_registry_connection_is_unavailable_not_an_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", "postgres://u:secret@db:5432/x")
    cells = ui.champion_cells({MODEL: "roc_auc"}, env_resolver)
    assert cells[MODEL]["state"] == "unavailable" and cells[MODEL]["detail"] == "registry connection: ValueError"


def test_the_page_renders_each_champion_state():
    row = ui.Row("orders_model.json", "orders_model", "@daily", True, models=[
        {"model": MODEL, "state": "champion", "version": "2", "metric": "roc_auc", "value": 0.73421, "detail": None},
        {"model": "churn", "state": "none", "version": None, "metric": None, "value": None, "detail": None},
        {"model": "ltv", "state": "unavailable", "version": None, "metric": "rmse", "value": None,
         "detail": "registry did not answer within 5 s"}])
    plain = ui.Row("orders_daily.json", "orders_daily", "@daily", True)
    page = ui.render([row, plain])
    assert "<th>model champion</th>" in page
    assert '<code>orders_lost</code>: <span class="ok">v2</span> · roc_auc 0.7342' in page
    assert "<code>churn</code>: no champion yet" in page
    assert '<code>ltv</code>: <span class="bad" title="registry did not answer within 5 s">unavailable</span>' in page
    # The definition without a model has '-' as its champion; neither has a validation report yet.
    assert page.count("<td>-</td><td>-</td></tr>") == 1 and page.count("<td>-</td></tr>") == 2


def test_a_multi_class_champion_shows_its_macro_f1(tmp_path, monkeypatch):
    from dagspec.ml.registry import Registry
    from dagspec.spec.model import Pipeline

    declared = EXAMPLES["orders_model_retrain.json"].model_dump(by_alias=True, exclude_none=True)
    declared["steps"][0]["classes"] = ["a", "b", "c"]
    del declared["steps"][2]  # no promote step names a metric (its 0/1 ones would be refused for three classes)
    assert ui.primary_metrics([Pipeline.model_validate(declared)]) == {MODEL: "f1_macro"}
    monkeypatch.setenv("DAGSPEC_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", raising=False)
    reg = Registry.open(env_resolver)
    run_id = reg.start_run(MODEL, {"dagspec.task": "classification"}, run_name="test")
    reg.log(run_id, metrics={"accuracy": 0.61, "f1_macro": 0.5512, "log_loss": 0.9})
    reg.finish(run_id)
    reg.set_champion(MODEL, reg.register(MODEL, run_id, {}))
    # Classes not declared: the definitions say roc_auc, the champion has none and shows its macro F1.
    cell = ui.champion_cells({MODEL: "roc_auc"}, env_resolver, wait=60)[MODEL]
    assert (cell["metric"], cell["value"]) == ("f1_macro", pytest.approx(0.5512))
    assert ui.champion_cells({MODEL: "accuracy"}, env_resolver, wait=60)[MODEL]["value"] == pytest.approx(0.61)
