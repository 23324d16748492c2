"""Publish a batch to a Google Sheets worksheet with gspread.

Order matters: check the workbook's cell limit first (nothing is touched when the batch does not
fit), grow the grid if needed, clear the worksheet (old rows never linger below a shorter refresh),
then write the header and rows in chunks. Every call retries with exponential backoff on HTTP 429
and 5xx, as Google asks clients to.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.gcp import credentials, extra

if TYPE_CHECKING:
    import gspread
    import requests

log = logging.getLogger(__name__)
CELL_LIMIT = 10_000_000  # Google Sheets' per-spreadsheet limit
CHUNK_ROWS = 5_000
SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
RETRY_STATUS = {429, 500, 502, 503, 504}


class SheetTooLarge(ValueError):
    pass


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


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return float(v) if v == v.to_integral_value() or abs(v.as_tuple().exponent) <= 15 else str(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return ""
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, dict)):
        import json

        return json.dumps(v, default=str)
    return v


def publish_sheet(info: ConnectionInfo, spreadsheet_id: str, worksheet: str, table: pa.Table,
                  max_rows: int, client: gspread.Client | None = None) -> int:
    """Replace the worksheet's content with header + rows. Returns the rows written (without the header)."""
    import gspread
    from gspread.utils import rowcol_to_a1

    if table.num_rows > max_rows:
        raise SheetTooLarge(f"the batch has {table.num_rows:,} rows, more than this sheet target's max_rows "
                            f"({max_rows:,}); raise max_rows or publish an aggregate")
    retry = Retrying(attempts=int(extra(info, "retries", 6)), base_seconds=float(extra(info, "retry_base_seconds", 1.0)))
    limit = int(extra(info, "cell_limit", CELL_LIMIT))
    gc = client or client_for(info)
    book = retry("open spreadsheet", lambda: gc.open_by_key(spreadsheet_id))
    meta = retry("read spreadsheet metadata", book.fetch_sheet_metadata)
    sheets = {s["properties"]["title"]: s["properties"] for s in meta["sheets"]}
    need_rows, need_cols = table.num_rows + 1, max(1, table.num_columns)
    others = sum(p["gridProperties"]["rowCount"] * p["gridProperties"]["columnCount"]
                 for title, p in sheets.items() if title != worksheet)
    current = sheets.get(worksheet, {}).get("gridProperties", {"rowCount": 0, "columnCount": 0})
    rows = max(need_rows, current["rowCount"])
    cols = max(need_cols, current["columnCount"])
    if others + rows * cols > limit:
        raise SheetTooLarge(
            f"spreadsheet {spreadsheet_id} worksheet {worksheet!r}: {need_rows:,} rows x {need_cols} columns would "
            f"take the workbook to {others + rows * cols:,} cells, over Google Sheets' limit of {limit:,}; "
            "publish fewer rows or columns, or use another spreadsheet")
    if worksheet in sheets:
        ws = gspread.Worksheet(book, sheets[worksheet], spreadsheet_id, gc.http_client)
        if rows != current["rowCount"] or cols != current["columnCount"]:
            retry("resize worksheet", lambda: ws.resize(rows=rows, cols=cols))
        retry("clear worksheet", ws.clear)
    else:
        ws = retry("add worksheet", lambda: book.add_worksheet(title=worksheet, rows=need_rows, cols=need_cols))
    header = [table.column_names]
    retry("write header", lambda: ws.update(header, "A1", value_input_option="RAW"))
    start = 2
    for chunk in table.to_batches(max_chunksize=CHUNK_ROWS):
        cols_py = [c.to_pylist() for c in chunk.columns]
        values = [[_cell(v) for v in row] for row in zip(*cols_py)]
        rng = rowcol_to_a1(start, 1)
        retry(f"write rows from {rng}", lambda values=values, rng=rng: ws.update(values, rng, value_input_option="RAW"))
        start += len(values)
    if retry.retries:
        log.info("Sheets publish needed %d retries (rate limits)", retry.retries)
    return table.num_rows
