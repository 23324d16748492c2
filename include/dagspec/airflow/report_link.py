"""The report buttons on a task in the Airflow UI: a validate task's batch report (passed or failed) and a
train task's training report, as the plugin serves them (airflow/ui_reports.py).

Airflow 3 asks each extra link for its URL when the task ends, in the worker, and keeps the answer
as an XCom the UI reads. The validate operator records where its report is before the step runs, so a
failed validation still gets its link; a training report exists only once a version is registered, so
the train operator records it from the step's result. Kept light: every Airflow process loads the plugin
that registers these.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink


class ReportLink(BaseOperatorLink):
    """The URL the operator recorded in `report_url` (empty: the UI shows no button)."""

    name = "Report"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        return str(getattr(operator, "report_url", "") or "")


class ValidationReportLink(ReportLink):
    name = "Validation report"


class TrainingReportLink(ReportLink):
    name = "Training report"
