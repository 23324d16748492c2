"""Airflow plugin: the dagspec Definitions page (Browse > Definitions). The work is in dagspec.airflow.ui."""

from airflow.plugins_manager import AirflowPlugin

from dagspec.airflow.ui import EXTERNAL_VIEW, URL_PREFIX, create_app


class DagspecPlugin(AirflowPlugin):
    name = "dagspec"
    fastapi_apps = [{"name": "dagspec_definitions", "app": create_app(), "url_prefix": URL_PREFIX}]
    external_views = [EXTERNAL_VIEW]
