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
