"""Airflow connections -> pyarrow file systems (local folder, S3 and S3-compatible stores, GCS).

One place turns a connection into a file system, so the store and the object sources agree on
what an `aws` or `google_cloud_platform` connection means. All object I/O goes through pyarrow's
C++ file systems: streaming multipart uploads, ranged reads, retries, no hand-written HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from dagspec.connections import ConnectionInfo

LOCAL_TYPES = ("fs", "file", "local")
S3_TYPES = ("aws", "s3")
GCS_TYPES = ("google_cloud_platform", "gcs", "gcp")
SCHEMES = {"s3": "s3", "gcs": "gs", "local": ""}  # pyarrow's type_name -> URI scheme shown to people


@dataclass(frozen=True)
class Location:
    """A file system and a path inside it (bucket/prefix for object stores, an absolute folder locally)."""

    fs: pafs.FileSystem
    path: str

    @property
    def kind(self) -> str:
        return self.fs.type_name

    def uri(self, path: str | None = None) -> str:
        """How a path is shown to people and logs: s3://bucket/key, gs://bucket/key, or a local path."""
        path = self.path if path is None else path
        scheme = SCHEMES.get(self.kind, self.kind)
        return f"{scheme}://{path}" if scheme else path


def extra_value(info: ConnectionInfo, name: str) -> Any:
    """Airflow stores extras bare or with the old `extra__<type>__` prefix; accept both."""
    if name in info.extra:
        return info.extra[name]
    return info.extra.get(f"extra__{info.conn_type}__{name}")


def filesystem(info: ConnectionInfo, bucket: str | None = None) -> pafs.FileSystem:
    """The file system a connection points at; the secret goes to pyarrow and nowhere else. `bucket` lets
    an AWS connection without region_name find its bucket's region."""
    if info.conn_type in LOCAL_TYPES:
        return pafs.LocalFileSystem()
    if info.conn_type in S3_TYPES:
        return _s3(info, bucket)
    if info.conn_type in GCS_TYPES:
        return _gcs(info)
    raise ValueError(
        f"connection {info.conn_id!r} has type {info.conn_type!r}; object storage needs 'fs' (a local folder), "
        "'aws' (S3 or an S3-compatible store) or 'google_cloud_platform' (GCS)"
    )


def _s3(info: ConnectionInfo, bucket: str | None) -> pafs.S3FileSystem:
    kwargs: dict[str, Any] = {}
    access_key = info.login or extra_value(info, "aws_access_key_id")
    secret_key = info.password or extra_value(info, "aws_secret_access_key")
    if access_key and secret_key:
        kwargs.update(access_key=access_key, secret_key=secret_key)
        token = extra_value(info, "aws_session_token")
        if token:
            kwargs["session_token"] = token
    service = extra_value(info, "service_config") or {}
    endpoint = extra_value(info, "endpoint_url") or (service.get("s3") or {}).get("endpoint_url") or info.host
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    region = extra_value(info, "region_name") or extra_value(info, "region")
    if region:
        kwargs["region"] = region
    elif bucket and not endpoint:
        try:  # real AWS answers for any region, but a wrong one costs a redirect per request
            kwargs["region"] = pafs.resolve_s3_region(bucket)
        except OSError:
            pass
    if extra_value(info, "role_arn"):
        kwargs["role_arn"] = extra_value(info, "role_arn")
    return pafs.S3FileSystem(**kwargs)


def _gcs(info: ConnectionInfo) -> pafs.GcsFileSystem:
    kwargs: dict[str, Any] = {}
    endpoint = extra_value(info, "endpoint") or extra_value(info, "endpoint_url")
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https")
    project = extra_value(info, "project") or extra_value(info, "project_id")
    if project:
        kwargs["project_id"] = project
    key_path = extra_value(info, "key_path")
    keyfile = extra_value(info, "keyfile_dict")
    if extra_value(info, "anonymous") in (True, "true", "True", "1") or (endpoint and not (key_path or keyfile)):
        kwargs["anonymous"] = True  # emulators and public buckets take no credentials
    elif key_path or keyfile:
        kwargs.update(_service_account_token(info, key_path, keyfile))
    # else: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, workload identity, gcloud)
    return pafs.GcsFileSystem(**kwargs)


def _service_account_token(info: ConnectionInfo, key_path: str | None, keyfile: Any) -> dict[str, Any]:
    """pyarrow takes a bearer token, not a key file: mint one with google-auth (valid about an hour)."""
    import json

    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    scopes = ["https://www.googleapis.com/auth/devstorage.read_write"]
    try:
        if keyfile:
            data = json.loads(keyfile) if isinstance(keyfile, str) else keyfile
            creds = service_account.Credentials.from_service_account_info(data, scopes=scopes)
        else:
            creds = service_account.Credentials.from_service_account_file(key_path, scopes=scopes)
        creds.refresh(Request())
    except Exception as exc:
        raise ValueError(f"connection {info.conn_id!r}: cannot get a GCS token from its key: {type(exc).__name__}") from None
    expiry = creds.expiry.replace(tzinfo=UTC) if creds.expiry else datetime.now(UTC)
    return {"access_token": creds.token, "credential_token_expiration": expiry}


def split_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('s3', 'bucket/a/b'); 'gs://' and 'gcs://' are both GCS."""
    if "://" not in uri:
        raise ValueError(f"{uri!r} is not an object URI (s3://bucket/prefix or gs://bucket/prefix)")
    scheme, rest = uri.split("://", 1)
    scheme = {"gcs": "gs", "s3a": "s3"}.get(scheme.lower(), scheme.lower())
    if scheme not in ("s3", "gs") or not rest.strip("/"):
        raise ValueError(f"{uri!r} is not an object URI (s3://bucket/prefix or gs://bucket/prefix)")
    return scheme, rest.strip("/")


def check_scheme(info: ConnectionInfo, scheme: str, uri: str) -> None:
    wanted = "s3" if info.conn_type in S3_TYPES else "gs" if info.conn_type in GCS_TYPES else None
    if wanted is None:
        raise ValueError(
            f"connection {info.conn_id!r} has type {info.conn_type!r}; {uri!r} needs an 'aws' (s3://) "
            "or 'google_cloud_platform' (gs://) connection"
        )
    if scheme != wanted:
        raise ValueError(f"connection {info.conn_id!r} is a {info.conn_type} connection but {uri!r} is {scheme}://")


def location(info: ConnectionInfo) -> Location:
    """Where a store connection points: extra.path ('/folder', 's3://bucket/prefix' or 'gs://bucket/prefix')."""
    path = extra_value(info, "path")
    if info.conn_type in LOCAL_TYPES:
        path = path or info.host
        if not path:
            raise ValueError(f"store connection {info.conn_id!r} needs a folder in extra.path")
        from pathlib import Path

        return Location(pafs.LocalFileSystem(), str(Path(path).expanduser().absolute()))
    if not path:
        example = "s3://bucket/prefix" if info.conn_type in S3_TYPES else "gs://bucket/prefix"
        raise ValueError(f"store connection {info.conn_id!r} needs extra.path, e.g. {{\"path\": \"{example}\"}}")
    scheme, rest = split_uri(path)
    check_scheme(info, scheme, path)
    return Location(filesystem(info, rest.split("/", 1)[0]), rest)
