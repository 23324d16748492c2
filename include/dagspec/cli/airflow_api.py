"""The few Airflow REST API calls a backfill needs, signed in with the JWT of POST /auth/token."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.markup import escape

from dagspec.cli.common import err


class AirflowClient:
    """Just the REST calls a backfill needs, with the JWT of POST /auth/token."""

    def __init__(self, url: str, username: str, password: str | None):
        import requests

        self.url = url.rstrip("/")
        self.http = requests.Session()
        password = password or dev_stack_password(username)
        if password is None:
            err.print("[red]no Airflow password: give --password or DAGSPEC_AIRFLOW_PASSWORD[/]")
            raise typer.Exit(2)
        try:
            resp = self.http.post(f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=30)
        except (requests.Timeout, requests.ConnectionError):
            err.print(f"[red]no Airflow api-server answers at {escape(self.url)}[/] (start one with `make up`, "
                      "give --url, or run the dates in-process with --local)")
            raise typer.Exit(2) from None
        if resp.status_code not in (200, 201):
            err.print(f"[red]Airflow refused the login of {escape(repr(username))} (HTTP {resp.status_code})[/]")
            raise typer.Exit(2)
        self.http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs) -> dict:
        import requests

        for attempt in range(4):
            try:
                resp = self.http.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)
                break
            except (requests.Timeout, requests.ConnectionError) as exc:
                # Following a long backfill must survive a busy or restarting api-server; a POST is not repeated.
                if method != "GET" or attempt == 3:
                    raise ApiError(0, f"no answer from {self.url} ({type(exc).__name__})") from None
                time.sleep(5 * (attempt + 1))
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise ApiError(resp.status_code, detail if isinstance(detail, str) else json.dumps(detail))
        return resp.json()


class ApiError(RuntimeError):
    """An answer of the api-server that is an error, or no answer at all (status 0)."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail[:500]}")
        self.status = status


def dev_stack_password(username: str) -> str | None:
    """The dev stack's generated password of ``username`` in $AIRFLOW_HOME, if there is one."""
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    try:
        return json.loads((home / "simple_auth_manager_passwords.json.generated").read_text()).get(username)
    except (FileNotFoundError, ValueError):
        return None
