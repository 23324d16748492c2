"""Where the Definitions page lives in the Airflow UI: constants only, so registering the plugin is free."""

URL_PREFIX = "/dagspec"
REPORTS_ROUTE = f"{URL_PREFIX}/reports"  # validation and training reports, served to signed-in users
EXTERNAL_VIEW = {
    "name": "Definitions",
    "href": f"{URL_PREFIX.lstrip('/')}/",
    "destination": "nav",
    "category": "browse",
    "url_route": "dagspec-definitions",
}
