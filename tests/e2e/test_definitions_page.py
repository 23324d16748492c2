"""The Definitions page in a real browser: headless Chromium (Debian's package, driven over the
DevTools protocol) against a running api-server with the dagspec plugin. Asserts what a user sees
and keeps screenshots in test-artifacts/.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from conftest import need
from ops_stack import dags_folder, running_stack
from support.expected import source_orders
from test_dev_stack import REPO, poll

# The suite's 900 s per test is too short for a stack start plus one run on 2 busy cores.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

ARTIFACTS = REPO / "test-artifacts"
RUN = {"logical_date": "2025-03-01T00:00:00Z", "data_interval_start": "2025-03-01T00:00:00Z",
       "data_interval_end": "2025-03-02T00:00:00Z"}


class Browser:
    """Just enough of the Chrome DevTools protocol: cookies, navigation, page text, screenshots."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 2**20, open_timeout=30)
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def text(self) -> str:
        res = self.call("Runtime.evaluate", expression="document.body ? document.body.innerText : ''",
                        returnByValue=True)
        return res["result"].get("value") or ""

    def table_cells(self) -> list[list[str]]:
        expr = "[...document.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))"
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"]["value"]

    def frame_text(self) -> str:
        """Text of the page and of its same-origin iframes (the UI shows the plugin page in one)."""
        expr = ("[document.body ? document.body.innerText : '']"
                ".concat([...document.querySelectorAll('iframe')].map(f => {"
                "try { return f.contentDocument.body.innerText } catch (e) { return '' } })).join('\\n')")
        res = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return res["result"].get("value") or ""

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))


@contextlib.contextmanager
def chromium():
    exe = shutil.which("chromium")
    need(exe is not None, "Debian's chromium (scripts/install_chromium.sh, run by `make test`)")
    profile = Path(tempfile.mkdtemp(prefix="ds-ops-chromium-"))
    proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             f"--user-data-dir={profile}", "--window-size=1400,900", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    browser = None
    try:
        port_file = profile / "DevToolsActivePort"
        poll("chromium did not open its DevTools port", 60, port_file.exists, every=0.3)
        time.sleep(0.3)
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = next(t for t in targets if t["type"] == "page")
        browser = Browser(page["webSocketDebuggerUrl"])
        browser.call("Page.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        yield browser
    finally:
        if browser is not None:
            with contextlib.suppress(Exception):
                browser.ws.close()
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    need(shutil.which("chromium") is not None, "Debian's chromium (scripts/install_chromium.sh, run by `make test`)")
    root = tmp_path_factory.mktemp("ops_page")
    dags = dags_folder(root, ["orders_daily.json", "customers_snapshot.json", "orders_model.json",
                              "orders_model_retrain.json"])  # the model examples end in 2025: never scheduled
    (dags / "definitions" / "broken.json").write_text(json.dumps({
        "dag_id": "broken", "start_date": "2025-01-01", "schedul": "@daily",
        "steps": [{"id": "e", "kind": "extract", "source": {"table": "orders"}, "target": {"schema": "raw", "table": "b"}}],
    }))
    with running_stack(root, dags, None, ["orders_daily", "customers_snapshot"]) as st:
        yield st


def register_champion(data_home: Path) -> tuple[str, float]:
    """One version of the example model in the stack's embedded registry, with the champion alias (as a promote
    step leaves it; training it for real would only slow this test down)."""
    from dagspec.connections import env_resolver
    from dagspec.ml.registry import Registry

    roc_auc = 0.7342
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSPEC_HOME", str(data_home))
        mp.delenv("AIRFLOW_CONN_DAGSPEC_MLFLOW", raising=False)
        registry = Registry.open(env_resolver)
        run_id = registry.start_run("orders_lost", {"dagspec.task": "classification"}, run_name="e2e champion")
        registry.log(run_id, metrics={"roc_auc": roc_auc, "log_loss": 0.41})
        registry.finish(run_id)
        version = registry.register("orders_lost", run_id, {"dagspec.dag_id": "orders_model_retrain"})
        registry.set_champion("orders_lost", version)
    return version, roc_auc


def test_the_dag_processor_files_a_bad_definition_as_its_own_import_error(stack):
    """What the UI's Browse > Import errors shows, from the real dag-processor through the REST API."""

    def broken_error():
        errors = stack.get("/api/v2/importErrors")["import_errors"]
        return [e for e in errors if e["filename"].endswith("broken.py")]

    # The first parse writes the stub; the processor's next folder scan files its error.
    found = poll(lambda: f"no import error for broken.json\n{stack.logs()}", 240, broken_error, every=3)
    assert len(found) == 1 and "_definition_errors/" in found[0]["filename"]
    assert ("definitions/broken.json: $.schedul: unknown key 'schedul' (fix: did you mean 'schedule'?)"
            in found[0]["stack_trace"])
    # Only the bad definition is reported; every good one is a DAG.
    assert [e["filename"] for e in stack.get("/api/v2/importErrors")["import_errors"]] == [found[0]["filename"]]
    dag_ids = {d["dag_id"] for d in stack.get("/api/v2/dags", limit=100)["dags"]}
    assert {"orders_daily", "customers_snapshot", "orders_model", "orders_model_retrain"} <= dag_ids
    assert "broken" not in dag_ids
    # The dag-processor's own log of the loader file (Airflow keeps one per parsed file) names it too.
    logs = list((stack.home / "logs" / "dag_processor").rglob("dagspec_loader_*.log"))
    assert any("definitions/broken.json: $.schedul: unknown key 'schedul'" in p.read_text(errors="replace")
               for p in logs), logs


def test_definitions_page_lists_every_definition_with_state_and_partitions(stack):
    # One real run, so the page has a last run state and a staged partition to show.
    run = stack.post("/api/v2/dags/orders_daily/dagRuns", RUN)
    run_path = f"/api/v2/dags/orders_daily/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
    poll(lambda: f"run never finished\n{stack.logs()}", 300,
         lambda: stack.get(run_path)["state"] in ("success", "failed"), every=3)
    assert stack.get(run_path)["state"] == "success", stack.logs()
    rows = len(source_orders(stack.home.parent / "data" / "source.db", date(2025, 3, 1)))

    plugins = stack.get("/api/v2/plugins")["plugins"]
    views = [v for p in plugins if p["name"] == "dagspec" for v in p["external_views"]]
    assert [(v["name"], v["href"], v["url_route"]) for v in views] == [
        ("Definitions", "dagspec/", "dagspec-definitions")]
    # Signed out, the page answers 401 and shows nothing.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stack.url}/dagspec/", timeout=30)
    assert refused.value.code == 401

    token = stack.session.headers["Authorization"].split(" ", 1)[1]
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        browser.call("Network.enable")
        browser.call("Network.setCookie", name="_token", value=token, url=stack.url, path="/")
        browser.call("Page.navigate", url=f"{stack.url}/dagspec/")
        text = poll("the Definitions page never rendered", 60,
                    lambda: (t := browser.text()) and "latest staged partition" in t and t, every=0.5)

        lines = {cells[0]: cells for cells in browser.table_cells()}
        assert "5 definition(s), 1 invalid." in text
        # The model definitions before any model is trained (the embedded registry does not exist yet).
        for name in ("orders_model.json", "orders_model_retrain.json"):
            assert lines[name][6] == "orders_lost: no champion yet", lines[name]
        assert [lines[n][6] for n in ("orders_daily.json", "customers_snapshot.json", "broken.json")] == ["-"] * 3

        # A champion appears in the registry: the page shows its version and primary metric. The api-server
        # imports MLflow on first use, which may take longer than the page waits ("unavailable" meanwhile).
        version, roc_auc = register_champion(stack.home.parent / "data")
        expected = f"orders_lost: v{version} · roc_auc {roc_auc:.4f}"
        seen: list[str] = []

        def champion_shown():
            browser.call("Runtime.evaluate", expression="document.body.innerHTML = ''")  # no stale read
            browser.call("Page.navigate", url=f"{stack.url}/dagspec/")
            poll("the Definitions page never rendered", 60,
                 lambda: "latest staged partition" in browser.text(), every=0.5)
            cells = {c[0]: c for c in browser.table_cells()}
            seen.append(cells["orders_model.json"][6])
            return seen[-1] == expected and cells["orders_model_retrain.json"][6] == expected and cells

        lines = poll(lambda: f"champion never shown; cells seen: {seen}\n{stack.logs()}", 120, champion_shown, every=2)
        assert set(seen) <= {expected, "orders_lost: unavailable"}, seen
        text = browser.text()
        browser.screenshot(ARTIFACTS / "definitions-page.png")
        api = {d["file"]: d for d in stack.get("/dagspec/api/definitions")}
        assert api["orders_model.json"]["models"] == [{
            "model": "orders_lost", "state": "champion", "version": version, "metric": "roc_auc",
            "value": pytest.approx(roc_auc), "detail": None}]
        assert api["orders_daily.json"]["models"] == []
        orders = lines["orders_daily.json"]
        assert orders[1:5] == ["orders_daily", "@daily", "valid", "success 2025-03-01"], orders
        assert f"raw.orders: 2025-03-01 ({rows:,} rows)" in orders[5]
        snapshot = lines["customers_snapshot.json"]
        # Unpaused with a schedule: the scheduler may have started its latest interval meanwhile.
        assert snapshot[1:4] == ["customers_snapshot", "0 2 * * *", "valid"], snapshot
        assert re.fullmatch(r"no run yet|(queued|running|success|failed) \d{4}-\d\d-\d\d", snapshot[4]), snapshot
        assert lines["broken.json"][1:3] == ["-", "-"]
        assert "invalid" in lines["broken.json"][3]
        assert "definitions/broken.json: $.schedul: unknown key 'schedul' (fix: did you mean 'schedule'?)" in text

        # The same page inside Airflow's UI (Browse > Definitions): a screenshot for people to look at.
        browser.call("Page.navigate", url=f"{stack.url}/plugin/dagspec-definitions")
        with contextlib.suppress(pytest.fail.Exception):
            poll("", 45, lambda: "orders_daily.json" in browser.frame_text(), every=1)
        browser.screenshot(ARTIFACTS / "definitions-page-in-airflow-ui.png")
    assert (ARTIFACTS / "definitions-page.png").stat().st_size > 10_000


def test_the_api_server_serves_the_run_s_validation_report(stack):
    """The link a task log prints opens through the real api-server and the plugin (signed in only)."""
    reports = stack.home.parent / "data" / "reports" / "orders_daily" / "check_orders"
    pages = poll(lambda: f"no validation report in {reports}", 60, lambda: sorted(reports.rglob("*.html")), every=2)
    rel = pages[-1].relative_to(stack.home.parent / "data" / "reports").as_posix()
    page = stack.session.get(f"{stack.url}/dagspec/reports/{rel}", timeout=30)
    assert page.status_code == 200 and "expect_column_values_to_be_unique" in page.text
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{stack.url}/dagspec/reports/{rel}", timeout=30)
    assert refused.value.code == 401
    # Encoded: a client normalises a literal '../' away before it is sent (then the UI's own pages answer).
    escape = stack.session.get(f"{stack.url}/dagspec/reports/..%2F..%2F..%2Fairflow%2Fairflow.cfg", timeout=30)
    assert escape.status_code == 404 and "[core]" not in escape.text
    # The Definitions page links each validate step's newest report, with its verdict.
    (latest,) = {d["file"]: d for d in stack.get("/dagspec/api/definitions")}["orders_daily.json"]["reports"]
    assert (latest["step"], latest["passed"]) == ("check_orders", True)
    assert stack.session.get(f"{stack.url}/dagspec/{latest['href']}", timeout=30).status_code == 200

    # What a user does: from the Definitions page, follow the step's report link to the report itself.
    token = stack.session.headers["Authorization"].split(" ", 1)[1]
    with chromium() as browser:
        browser.call("Network.enable")
        browser.call("Network.setCookie", name="_token", value=token, url=stack.url, path="/")
        browser.call("Page.navigate", url=f"{stack.url}/dagspec/")
        poll("the Definitions page never rendered", 60, lambda: "latest staged partition" in browser.text(), every=0.5)
        links = browser.call("Runtime.evaluate", returnByValue=True, expression=(
            "[...document.querySelectorAll('a')].map(a => [a.innerText.trim(), a.href])"
            ".filter(([t, h]) => h.includes('/dagspec/reports/orders_daily/'))"))["result"]["value"]
        assert [text for text, _ in links] == [f"check_orders {latest['batch_date']}"], links
        browser.call("Page.navigate", url=links[0][1])
        text = poll("the report page never rendered", 60,
                    lambda: (t := browser.text()) and "expect_column_values_to_be_unique" in t and t, every=0.5)
        assert f"batch_date {latest['batch_date']}" in text and "verdict: passed" in text
        browser.screenshot(ARTIFACTS / "validation-report.png")
    assert (ARTIFACTS / "validation-report.png").stat().st_size > 10_000
