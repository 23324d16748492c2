"""Google clients (BigQuery, Sheets) from an Airflow google_cloud_platform connection.

Extra fields, as Airflow's Google provider names them (with or without its
`extra__google_cloud_platform__` prefix): project, keyfile_dict (JSON text or object), key_path,
location. `endpoint` points a client at an emulator or a fake (then anonymous credentials are used
unless a key is given); `grpc_endpoint` is the BigQuery Storage API's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dagspec.connections import ConnectionInfo

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import bigquery
    from google.cloud.bigquery_storage import BigQueryReadClient

_PREFIX = "extra__google_cloud_platform__"


def extra(info: ConnectionInfo, name: str, default: Any = None) -> Any:
    value = info.extra.get(name)
    if value in (None, ""):
        value = info.extra.get(_PREFIX + name)
    return default if value in (None, "") else value


def credentials(info: ConnectionInfo, scopes: list[str] | None = None) -> Credentials:
    from google.oauth2 import service_account

    keyfile = extra(info, "keyfile_dict")
    if keyfile:
        data = json.loads(keyfile) if isinstance(keyfile, str) else keyfile
        return service_account.Credentials.from_service_account_info(data, scopes=scopes)
    if extra(info, "key_path"):
        return service_account.Credentials.from_service_account_file(extra(info, "key_path"), scopes=scopes)
    if extra(info, "endpoint"):
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    import google.auth

    creds, _ = google.auth.default(scopes=scopes)
    return creds


def project(info: ConnectionInfo, override: str | None = None) -> str:
    value = override or extra(info, "project") or info.schema
    if not value:
        raise ValueError(f"connection {info.conn_id!r} names no Google Cloud project: set extra 'project'")
    return value


def bigquery_client(info: ConnectionInfo, project_id: str | None = None) -> bigquery.Client:
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    options = ClientOptions(api_endpoint=extra(info, "endpoint")) if extra(info, "endpoint") else None
    return bigquery.Client(project=project(info, project_id), credentials=credentials(info),
                           client_options=options, location=extra(info, "location"))


def bigquery_read_client(info: ConnectionInfo) -> BigQueryReadClient | None:
    """A Storage Read API client, or None where there is none (an emulator without a gRPC port)."""
    if extra(info, "endpoint") and not extra(info, "grpc_endpoint"):
        return None
    import grpc
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery_storage
    from google.cloud.bigquery_storage_v1.services.big_query_read.transports import BigQueryReadGrpcTransport

    if extra(info, "grpc_endpoint"):
        channel = grpc.insecure_channel(extra(info, "grpc_endpoint"))
        return bigquery_storage.BigQueryReadClient(transport=BigQueryReadGrpcTransport(channel=channel))
    return bigquery_storage.BigQueryReadClient(credentials=credentials(info), client_options=ClientOptions())
