"""Where the Definitions page lives in the Airflow UI: constants only, so registering the plugin is free."""

URL_PREFIX = "/dagspec"
EXTERNAL_VIEW = {
    "name": "Definitions",
    "href": f"{URL_PREFIX.lstrip('/')}/",
    "destination": "nav",
    "category": "browse",
    "url_route": "dagspec-definitions",
}
