"""The Google Sheets client both the Sheets target and the Sheets source use: gspread, with backoff.

Every call retries with exponential backoff and jitter on HTTP 429 and 5xx, as Google asks clients to.
A connection's extra `endpoint` sends the calls elsewhere (a fake in tests, a proxy).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dagspec.connections import ConnectionInfo
from dagspec.gcp import credentials, extra

if TYPE_CHECKING:
    import gspread
    import requests

log = logging.getLogger(__name__)
SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
RETRY_STATUS = {429, 500, 502, 503, 504}


def client_for(info: ConnectionInfo) -> gspread.Client:
    import gspread

    endpoint = extra(info, "endpoint")
    if endpoint:
        import requests
        from requests.adapters import HTTPAdapter

        class Redirect(HTTPAdapter):
            """Sends gspread's https://sheets.googleapis.com calls to the configured endpoint (a fake, a proxy)."""

            def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
                request.url = endpoint.rstrip("/") + request.url[len("https://sheets.googleapis.com"):]
                return super().send(request, **kwargs)

        session = requests.Session()
        session.mount("https://sheets.googleapis.com", Redirect())
        return gspread.Client(auth=None, session=session)
    return gspread.Client(auth=credentials(info, SCOPES))


class Retrying:
    def __init__(self, attempts: int = 6, base_seconds: float = 1.0, max_seconds: float = 64.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.attempts, self.base, self.max, self.sleep = attempts, base_seconds, max_seconds, sleep
        self.retries = 0

    def __call__(self, what: str, fn: Callable[[], Any]) -> Any:
        import gspread

        for attempt in range(self.attempts):
            try:
                return fn()
            except gspread.exceptions.APIError as exc:
                status = getattr(exc.response, "status_code", exc.code)
                if status not in RETRY_STATUS or attempt == self.attempts - 1:
                    raise
                delay = min(self.max, self.base * 2 ** attempt) * (0.5 + random.random() / 2)
                self.retries += 1
                log.warning("Sheets API answered %s to %s; retry %d in %.2fs", status, what, attempt + 1, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


def retrying_for(info: ConnectionInfo) -> Retrying:
    return Retrying(attempts=int(extra(info, "retries", 6)), base_seconds=float(extra(info, "retry_base_seconds", 1.0)))
