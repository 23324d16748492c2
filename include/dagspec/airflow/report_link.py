"""The "Validation report" button on a validate task in the Airflow UI: its batch's report, as the plugin
serves it (airflow/ui_reports.py), for failed checks too.

Airflow 3 asks each extra link for its URL when the task ends, in the worker, and keeps the answer
as an XCom the UI reads; the operator records where its report is before the step runs, so a failed
validation still gets its link. Kept light: every Airflow process loads the plugin that registers it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


class ValidationReportLink(BaseOperatorLink):
    name = "Validation report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return str(getattr(operator, "report_url", "") or "")
