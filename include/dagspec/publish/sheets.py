"""Publish a batch to a Google Sheets worksheet with gspread.

Order matters: check the workbook's cell limit first (nothing is touched when the batch does not
fit), grow the grid if needed, clear the worksheet (old rows never linger below a shorter refresh),
then write the header and rows in chunks. In append mode the worksheet's rows of other batches are read
first and written back with the new batch's, so a re-run replaces only its own rows. Every call goes
through sheets_client's backoff.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.gcp import extra
from dagspec.sheets_client import Retrying, client_for, retrying_for

if TYPE_CHECKING:
    import gspread

log = logging.getLogger(__name__)
CELL_LIMIT = 10_000_000  # Google Sheets' per-spreadsheet limit
CHUNK_ROWS = 5_000


class SheetTooLarge(ValueError):
    pass


class SheetNotOurs(ValueError):
    """An append-mode worksheet whose header is not the one dagspec writes (someone else's sheet)."""


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
                  max_rows: int, client: gspread.Client | None = None, append_for: dt.date | None = None) -> int:
    """Replace the worksheet's content with header + rows; returns the rows the worksheet holds (without the header).

    ``append_for``: keep the worksheet's rows of other batches (first column batch_date) and put this batch's
    rows, with their batch_date, among them in date order; a re-run of the batch replaces exactly its rows.
    """
    import gspread

    header = table.column_names
    if table.num_rows > max_rows:
        raise SheetTooLarge(f"the batch has {table.num_rows:,} rows, more than this sheet target's max_rows "
                            f"({max_rows:,}); raise max_rows or publish an aggregate")
    retry = retrying_for(info)
    limit = int(extra(info, "cell_limit", CELL_LIMIT))
    gc = client or client_for(info)
    book = retry("open spreadsheet", lambda: gc.open_by_key(spreadsheet_id))
    meta = retry("read spreadsheet metadata", book.fetch_sheet_metadata)
    sheets = {s["properties"]["title"]: s["properties"] for s in meta["sheets"]}
    ws = gspread.Worksheet(book, sheets[worksheet], spreadsheet_id, gc.http_client) if worksheet in sheets else None
    chunks: list[list[list[Any]]] = [_values(chunk) for chunk in table.to_batches(max_chunksize=CHUNK_ROWS)]
    if append_for is not None:
        header = ["batch_date", *header]
        earlier = [] if ws is None else retry("read worksheet", lambda: ws.get_values(
            value_render_option=gspread.utils.ValueRenderOption.unformatted))
        rows = _appended(earlier, header, append_for, [r for c in chunks for r in c], worksheet)
        if len(rows) > max_rows:
            raise SheetTooLarge(f"worksheet {worksheet!r} would hold {len(rows):,} rows, more than this sheet "
                                f"target's max_rows ({max_rows:,}); raise max_rows or start a new worksheet")
        chunks = [rows[i:i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS)]
    total = sum(len(c) for c in chunks)
    need_rows, need_cols = total + 1, max(1, len(header))
    others = sum(p["gridProperties"]["rowCount"] * p["gridProperties"]["columnCount"]
                 for title, p in sheets.items() if title != worksheet)
    current = sheets.get(worksheet, {}).get("gridProperties", {"rowCount": 0, "columnCount": 0})
    rows_n = max(need_rows, current["rowCount"])
    cols = max(need_cols, current["columnCount"])
    if others + rows_n * cols > limit:
        raise SheetTooLarge(
            f"spreadsheet {spreadsheet_id} worksheet {worksheet!r}: {need_rows:,} rows x {need_cols} columns would "
            f"take the workbook to {others + rows_n * cols:,} cells, over Google Sheets' limit of {limit:,}; "
            "publish fewer rows or columns, or use another spreadsheet")
    if ws is not None:
        if rows_n != current["rowCount"] or cols != current["columnCount"]:
            retry("resize worksheet", lambda: ws.resize(rows=rows_n, cols=cols))
        retry("clear worksheet", ws.clear)
    else:
        ws = retry("add worksheet", lambda: book.add_worksheet(title=worksheet, rows=need_rows, cols=need_cols))
    _write(ws, retry, header, chunks)
    if retry.retries:
        log.info("Sheets publish needed %d retries (rate limits)", retry.retries)
    return total


def _values(chunk: pa.RecordBatch) -> list[list[Any]]:
    return [[_cell(v) for v in row] for row in zip(*(c.to_pylist() for c in chunk.columns))]


def _appended(earlier: list[list[Any]], header: list[str], day: dt.date, new: list[list[Any]], worksheet: str
              ) -> list[list[Any]]:
    """The worksheet's rows of other batches with this batch's rows, in batch_date order (stable within a batch)."""
    earlier = [row for row in earlier if any(cell not in ("", None) for cell in row)]  # an empty sheet reads [[]]
    if earlier and [str(h) for h in earlier[0][:len(header)]] != header:
        raise SheetNotOurs(f"worksheet {worksheet!r} starts with columns {earlier[0][:len(header)]}, not {header}: "
                            "append mode adds to a worksheet it wrote; clear the worksheet or use another one")
    iso = day.isoformat()
    kept = [row[:len(header)] + [""] * (len(header) - len(row)) for row in earlier[1:]
            if row and str(row[0]) != iso]
    return sorted(kept + [[iso, *row] for row in new], key=lambda row: str(row[0]))


def _write(ws: gspread.Worksheet, retry: Retrying, header: list[str], chunks: list[list[list[Any]]]) -> None:
    from gspread.utils import rowcol_to_a1

    retry("write header", lambda: ws.update([header], "A1", value_input_option="RAW"))
    start = 2
    for values in chunks:
        rng = rowcol_to_a1(start, 1)
        retry(f"write rows from {rng}", lambda values=values, rng=rng: ws.update(values, rng, value_input_option="RAW"))
        start += len(values)
