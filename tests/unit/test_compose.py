"""The scale-out setup's topology: docker-compose.yaml and the Dockerfile it builds.

No Docker here: this reads the files. The Compose Specification's JSON Schema comes from the
check-jsonschema package, which vendors it (builtin_schemas/vendor/compose-spec.json).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
LONG_RUNNING = ["postgres", "redis", *AIRFLOW_COMPONENTS]
AIRFLOW_SERVICES = [*AIRFLOW_COMPONENTS, "airflow-init", "dagspec-sample-data"]


def env(service: str) -> dict[str, str]:
    return SERVICES[service]["environment"]


def test_services_present():
    assert {"postgres", "redis", "airflow-init", "dagspec-sample-data", *AIRFLOW_COMPONENTS} <= set(SERVICES)
    for service, command in AIRFLOW_COMPONENTS.items():
        assert SERVICES[service]["command"] == command


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_celery_on_redis_with_postgres_metadata(service):
    e = env(service)
    assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert re.fullmatch(r"redis://[^@]*@redis:6379/\d+", e["AIRFLOW__CELERY__BROKER_URL"])
    assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
    assert e["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert e["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    # Celery workers run tasks in other containers: they must reach the API server by service name.
    assert e["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_backing_services():
    assert SERVICES["postgres"]["image"] == "postgres:16"
    assert SERVICES["redis"]["image"].startswith("redis:")
    pg = SERVICES["postgres"]["environment"]
    assert (pg["POSTGRES_USER"], pg["POSTGRES_DB"]) == ("airflow", "airflow")
    assert "postgres-db-volume:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_project_mounts_and_data_volume(service):
    # "${AIRFLOW_PROJ_DIR:-.}/dags:/opt/airflow/dags": the source itself may hold a colon.
    pairs = (m.rpartition(":") for m in SERVICES[service]["volumes"])
    mounts = {target: source for source, _, target in pairs}
    for folder in ("dags", "plugins", "include"):
        assert mounts[f"/opt/airflow/{folder}"] == f"${{AIRFLOW_PROJ_DIR:-.}}/{folder}"
    data_home = env(service)["DAGSPEC_HOME"]
    # A named volume, shared by every worker, not a folder inside one container.
    assert mounts[data_home] in COMPOSE["volumes"]
    assert env(service)["AIRFLOW_CONFIG"].startswith("/opt/airflow/config/")
    assert mounts["/opt/airflow/config"] in COMPOSE["volumes"]


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_healthchecks(service):
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) >= 2
    assert check["retries"] >= 1


def test_scheduler_healthcheck_server_is_enabled():
    assert env("airflow-scheduler")["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    assert "8974/health" in " ".join(SERVICES["airflow-scheduler"]["healthcheck"]["test"])


@pytest.mark.parametrize("service", [*AIRFLOW_COMPONENTS, "dagspec-sample-data"])
def test_start_order(service):
    deps = SERVICES[service]["depends_on"]
    assert deps["postgres"]["condition"] == "service_healthy"
    assert deps["redis"]["condition"] == "service_healthy"
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"


def test_worker_waits_for_the_execution_api():
    assert SERVICES["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_init_migrates_and_creates_the_admin():
    init = SERVICES["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert init["user"] == "0:0"  # it chowns the volumes for AIRFLOW_UID
    assert "airflow config list" in init["command"][-1]


def test_api_server_published_on_loopback_only():
    (port,) = SERVICES["airflow-apiserver"]["ports"]
    assert port.startswith("127.0.0.1:") and port.endswith(":8080")


def test_image_is_built_from_the_locked_airflow_version():
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG AIRFLOW_BASE=apache/airflow:(?:slim-)?([\d.]+)", dockerfile, re.M).group(1)
    locked = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert base == locked
    assert re.search(r"^FROM \$\{AIRFLOW_BASE\}$", dockerfile, re.M)
    # Providers compose relies on: Celery on Redis, PostgreSQL, FAB (auth manager, users create).
    extras = re.search(r'"apache-airflow\[([^\]]*)\]==\$\{AIRFLOW_VERSION\}"', dockerfile).group(1)
    assert {"celery", "redis", "postgres", "fab"} <= set(extras.split(","))
    for service in AIRFLOW_SERVICES:
        assert SERVICES[service]["build"] == "."
    # The editable install must point at the folder compose mounts include/ over.
    assert re.search(r"COPY\b.*\brequirements\.txt\b.*\bpyproject\.toml\b.*/opt/airflow/", dockerfile)
    assert re.search(r"COPY\b.*\binclude/ /opt/airflow/include/", dockerfile)
    assert "-e /opt/airflow" in dockerfile and "-r /opt/airflow/requirements.txt" in dockerfile


def compose_schema() -> dict | None:
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None:
        return None
    path = Path(spec.submodule_search_locations[0]) / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())


def test_valid_against_the_compose_specification():
    schema = compose_schema()
    if schema is None:
        message = "check-jsonschema (which vendors the Compose Specification's schema) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []
