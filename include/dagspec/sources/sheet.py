"""A Google Sheets worksheet as a source: read whole (a lookup has no window), typed by the declared columns.

Cells are read unformatted, so a number is the number the sheet holds (not its display, "1,234.50 €"),
and a date or time cell is its serial number (days since 1899-12-30, Google's and Excel's epoch). A
cell is converted to its column's type or the run fails naming the worksheet row and column: a lookup
that silently turns a typo into NULL would publish wrong joins. Nothing a cell holds is evaluated.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.errors import StepFailed
from dagspec.sheets_client import client_for, retrying_for
from dagspec.sources.contract import Rows
from dagspec.sources.objects import arrow_type
from dagspec.spec.model import SheetSource
from dagspec.windows import Batch

SERIAL_EPOCH = dt.datetime(1899, 12, 30)
TRUE, FALSE = {"true", "yes", "1"}, {"false", "no", "0"}


class BadCell(ValueError):
    pass


def read_batches(info: ConnectionInfo, source: SheetSource, batch: Batch, chunk_rows: int) -> Rows:
    import gspread

    retry = retrying_for(info)
    gc = client_for(info)
    try:
        book = retry("open spreadsheet", lambda: gc.open_by_key(source.spreadsheet_id))
        ws = retry("open worksheet", lambda: book.worksheet(source.worksheet))
        values = retry("read worksheet", lambda: ws.get_values(
            value_render_option=gspread.utils.ValueRenderOption.unformatted,
            date_time_render_option=gspread.utils.DateTimeOption.serial_number))
    except gspread.exceptions.WorksheetNotFound:
        raise StepFailed(f"spreadsheet {source.spreadsheet_id}: no worksheet {source.worksheet!r}") from None
    except gspread.exceptions.APIError as exc:
        raise StepFailed(info.scrub(f"spreadsheet {source.spreadsheet_id} via connection {info.conn_id!r}: "
                                    f"{exc}")) from None
    table = typed(values, source)
    return table.schema, iter(table.to_batches(max_chunksize=chunk_rows))


def typed(values: list[list[Any]], source: SheetSource) -> pa.Table:
    """The worksheet's rows (header first) as a table of the declared columns, in the declared order."""
    # (sheet row number, cells) of every non-empty row: the first is the header.
    rows = [(n, r) for n, r in enumerate(values, start=1) if any(c not in ("", None) for c in r)]
    header = [str(h).strip() for h in rows[0][1]] if rows else []
    where = f"worksheet {source.worksheet!r}"
    missing = [c for c in source.columns if c not in header]
    if missing:
        raise StepFailed(f"{where}: no column(s) {', '.join(map(repr, missing))} in the first row "
                         f"(it has {', '.join(map(repr, header[:30])) or 'nothing'}); fix the header or 'columns'")
    data = rows[1:]
    if len(data) > source.max_rows:
        raise StepFailed(f"{where}: {len(data):,} data rows, more than the source's max_rows ({source.max_rows:,})")
    arrays = {}
    for name, type_name in source.columns.items():
        at, kind = header.index(name), arrow_type(type_name)
        column = []
        for number, row in data:
            cell = row[at] if at < len(row) else ""
            try:
                column.append(convert(cell, kind))
            except BadCell as exc:
                shown = repr(cell) if len(repr(cell)) <= 60 else repr(cell)[:57] + "..."
                raise StepFailed(f"{where} row {number}, column {name!r}: {shown} {exc} "
                                 f"(the column is declared {type_name})") from None
        arrays[name] = pa.array(column, type=kind)
    return pa.table(arrays)


def convert(cell: Any, kind: pa.DataType) -> Any:
    """One cell as a Python value of `kind` (None for an empty cell), or BadCell saying what it is not."""
    if cell is None or cell == "":
        return None
    if pa.types.is_string(kind):
        return _text(cell)
    if pa.types.is_boolean(kind):
        if isinstance(cell, bool):
            return cell
        word = str(cell).strip().lower()
        if word in TRUE or word in FALSE:
            return word in TRUE
        raise BadCell("is not a boolean (TRUE/FALSE)")
    if pa.types.is_integer(kind):
        number = _number(cell, "an integer")
        # Size first: int() of "1e999999999" would build a billion-digit integer.
        if number.adjusted() > 18 or number != number.to_integral_value():
            raise BadCell("is not a whole number" if number.adjusted() <= 18 else f"does not fit {kind}")
        value = int(number)
        bits = kind.bit_width - 1
        if not -(2 ** bits) <= value < 2 ** bits:
            raise BadCell(f"does not fit {kind}")
        return value
    if pa.types.is_floating(kind):
        return float(_number(cell, "a number"))
    if pa.types.is_decimal(kind):
        number = _number(cell, "a number")
        too_big = number != 0 and number.adjusted() + 1 > kind.precision - kind.scale
        if too_big or number != number.quantize(Decimal(1).scaleb(-kind.scale)):
            raise BadCell(f"does not fit decimal({kind.precision},{kind.scale})")
        return number.quantize(Decimal(1).scaleb(-kind.scale))
    if pa.types.is_date(kind):
        return _moment(cell).date()
    if pa.types.is_timestamp(kind):
        moment = _moment(cell)
        return moment.replace(tzinfo=dt.UTC) if kind.tz else moment
    raise BadCell(f"cannot be read as {kind}")


def _text(cell: Any) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))  # a code typed as 123 reads back as 123.0
    return str(cell)


def _number(cell: Any, what: str) -> Decimal:
    if isinstance(cell, bool):
        raise BadCell(f"is not {what}")
    if isinstance(cell, float) and not math.isfinite(cell):
        raise BadCell(f"is not {what}")
    try:
        # repr of a float is its shortest exact round-trip: 26996.57, not 26996.5699999999997...
        return Decimal(repr(cell) if isinstance(cell, float) else str(cell).strip())
    except InvalidOperation:
        raise BadCell(f"is not {what}") from None


def _moment(cell: Any) -> dt.datetime:
    if isinstance(cell, (int, float)) and not isinstance(cell, bool) and math.isfinite(cell):
        # Sheets keeps milliseconds; a fraction of a day in binary is not exact, so round to them.
        return SERIAL_EPOCH + dt.timedelta(milliseconds=round(cell * 86_400_000))
    try:
        moment = dt.datetime.fromisoformat(str(cell).strip())
    except ValueError:
        raise BadCell("is not a date (a date cell, or text YYYY-MM-DD[ HH:MM:SS])") from None
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment
