"""Reports in the UI: the plugin's app serves validation and training reports to signed-in users, never a file
outside the reports folder, and a task's log links the page there instead of a worker-local file:// path."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture()
def client(data_home):
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from dagspec.airflow.ui import create_app

    app = create_app()
    signed_in = TestClient(app)
    app.dependency_overrides[get_user] = lambda: object()
    return signed_in, TestClient(create_app())


def test_a_validation_report_is_linked_and_served(client, data_home, monkeypatch, caplog):
    from dagspec.airflow.build import reports_url
    from dagspec.runner import run_step
    from dagspec.spec import load_definition

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    pipeline = load_definition(Path(__file__).resolve().parents[2] / "dags/definitions/orders_daily.json")
    start, end = datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
    run_step(pipeline, "extract_orders", start, end)
    with caplog.at_level(logging.INFO, logger="dagspec"):
        run_step(pipeline, "check_orders", start, end, reports_url=reports_url())
    link = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("validation report:"))
    url = link.split()[2]
    assert url.startswith("https://airflow.example.com/dagspec/reports/orders_daily/check_orders/"), link
    assert url.endswith(".html") and "file://" not in link

    signed_in, anonymous = client
    path = url.removeprefix("https://airflow.example.com/dagspec")  # the plugin mounts the app at /dagspec
    page = signed_in.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "expect_column_values_to_be_unique" in page.text
    result = signed_in.get(path.removesuffix(".html") + ".json")
    assert result.status_code == 200 and result.json()["suite_name"] == "orders_daily.check_orders"
    assert anonymous.get(path).status_code == 401


def test_nothing_outside_the_reports_folder_is_served(client, data_home):
    reports = data_home / "reports"
    (reports / "d").mkdir(parents=True)
    (reports / "d" / "ok.html").write_text("<p>ok</p>")
    (reports / "d" / "notes.txt").write_text("not a report")
    (data_home / "secret.json").write_text('{"password": "hunter2"}')
    (reports / "d" / "link.json").symlink_to(data_home / "secret.json")
    signed_in, _ = client
    assert signed_in.get("/reports/d/ok.html").text == "<p>ok</p>"
    for path in ("/reports/d/notes.txt", "/reports/../secret.json", "/reports/d/..%2F..%2Fsecret.json",
                 "/reports/d/link.json", "/reports/%2Fetc%2Fpasswd", "/reports/d/missing.html", "/reports/"):
        res = signed_in.get(path)
        assert res.status_code == 404 and "hunter2" not in res.text, path


def test_a_validate_task_links_its_report_passed_or_failed(airflow_db, dags_folder, data_home, monkeypatch):
    import json

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    definitions = dags_folder / "definitions"
    strict = json.loads((definitions / "orders_daily.json").read_text())
    strict.update(dag_id="orders_strict", retries=0)  # dag.test() would wait out the retry delay
    for step in strict["steps"]:
        if step["kind"] == "extract":
            step["target"]["table"] = "orders_strict"
        if step["kind"] == "validate":  # no day of the sample has fewer than 2 orders: this check fails
            step["expectations"] = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 1}}]
        if step["kind"] == "publish":
            step["table"]["table"] = "strict_" + step["table"]["table"]
    (definitions / "orders_strict.json").write_text(json.dumps(strict))
    bag = DagBag(dag_folder=str(dags_folder))
    end = datetime(2025, 3, 2, tzinfo=UTC)
    for dag_id, state in (("orders_daily", "success"), ("orders_strict", "failed")):
        run = bag.dags[dag_id].test(logical_date=end)
        assert run.state == state
        with create_session() as session:
            links = session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id,
                                                    XComModel.key == "_link_ValidationReportLink").all()
        assert [(x.task_id, XComModel.deserialize_value(x)) for x in links] == [
            ("check_orders", f"https://airflow.example.com/dagspec/reports/{dag_id}/check_orders/batch_date=2025-03-01.html")]
        assert (data_home / f"reports/{dag_id}/check_orders/batch_date=2025-03-01.html").is_file()
    # The Definitions page's "latest checks" cell: the newest report of each validate step and its verdict.
    from dagspec.airflow.ui_reports import latest_reports

    for dag_id, passed in (("orders_daily", True), ("orders_strict", False)):
        assert latest_reports(data_home / "reports", _pipeline(definitions, dag_id)) == [
            {"step": "check_orders", "batch_date": "2025-03-01", "passed": passed,
             "href": f"reports/{dag_id}/check_orders/batch_date=2025-03-01.html"}]


def _pipeline(definitions: Path, dag_id: str):
    from dagspec.spec import load_definition

    return load_definition(definitions / f"{dag_id}.json")
