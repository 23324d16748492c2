"""A running Sheets v4 fake with one spreadsheet (worksheets Revenue and Other); AIRFLOW_CONN_SHEETS points at it."""

from __future__ import annotations

import json

import pytest

from support.sheets_fake import FakeSheets

SHEET_ID = "1dagspecFakeSheetId0123"


@pytest.fixture()
def sheets(monkeypatch):
    fake = FakeSheets()
    fake.add_spreadsheet(SHEET_ID, sheets=(("Revenue", 5, 3), ("Other", 10, 10)))
    endpoint = fake.start()
    monkeypatch.setenv("AIRFLOW_CONN_SHEETS", json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "endpoint": endpoint, "retry_base_seconds": 0.01}}))
    yield fake
    fake.stop()
