"""Airflow plugin: the dagspec Definitions page (Browse > Definitions), registered through the
`airflow.plugins` entry point (pyproject.toml), so an installed dagspec needs no file in plugins/."""

from airflow.plugins_manager import AirflowPlugin

from dagspec.airflow.ui import EXTERNAL_VIEW, URL_PREFIX, create_app


class DagspecPlugin(AirflowPlugin):
    name = "dagspec"
    fastapi_apps = [{"name": "dagspec_definitions", "app": create_app(), "url_prefix": URL_PREFIX}]
    external_views = [EXTERNAL_VIEW]
