"""Airflow plugin: the dagspec Definitions page (Browse > Definitions), registered through the
`airflow.plugins` entry point (pyproject.toml), so an installed dagspec needs no file in plugins/.

Every Airflow process loads every plugin (each task, each DAG file parse), but only the api-server
serves pages: the FastAPI app (half a second of imports) is built when the api-server first asks.
"""

from functools import cached_property

from airflow.plugins_manager import AirflowPlugin

from dagspec.airflow.report_link import TrainingReportLink, ValidationReportLink
from dagspec.airflow.ui_route import EXTERNAL_VIEW, URL_PREFIX


class DagspecPlugin(AirflowPlugin):
    name = "dagspec"
    external_views = [EXTERNAL_VIEW]
    operator_extra_links = [ValidationReportLink(), TrainingReportLink()]

    @cached_property
    def fastapi_apps(self) -> list[dict]:
        from dagspec.airflow.ui import create_app

        return [{"name": "dagspec_definitions", "app": create_app(), "url_prefix": URL_PREFIX}]
