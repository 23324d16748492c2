"""An Excel (.xlsx) export part: one workbook, one worksheet named by the table, a header row and the batch.

XlsxWriter in constant_memory mode flushes each row to a temporary file as it is written, so memory
stays flat whatever the batch size; the finished workbook is then copied into the store's stream
(checksummed on the way, like every part). Strings are written as strings, never as formulas, URLs or
numbers: a cell value "=HYPERLINK(...)" from a source row must not become a live formula in someone's
Excel. Excel's own limits are checked, not left to truncate: 1,048,576 rows, 32,767 characters a cell.
Numbers are IEEE doubles in Excel: a DECIMAL with more than 15 significant digits is written as text so
no digit is lost; timestamps with a time zone are written in UTC (Excel has no zones).
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from dagspec.store_io import HashingSink
from dagspec.store_manifest import PartFile
from dagspec.store_parts import NameOf

MAX_ROWS = 1_048_576 - 1  # Excel's sheet height, less the header
MAX_CELL_CHARS = 32_767
EXACT_DIGITS = 15


class TooBigForExcel(ValueError):
    pass


@dataclass(frozen=True)
class XlsxPart:
    sheet_name: str = "batch"
    suffix: str = "xlsx"

    def write(self, fs: pafs.FileSystem, folder: str, name_of: NameOf, arrow_schema: pa.Schema,
              batches: Iterable[pa.RecordBatch], written: list[str]) -> list[PartFile]:
        import xlsxwriter

        name = name_of(0)
        written.append(name)
        with tempfile.TemporaryDirectory(prefix="dagspec-xlsx-") as tmp:
            local = Path(tmp) / name
            book = xlsxwriter.Workbook(str(local), {
                "constant_memory": True, "tmpdir": tmp, "strings_to_formulas": False, "strings_to_urls": False,
                "strings_to_numbers": False, "default_date_format": "yyyy-mm-dd"})
            sheet = book.add_worksheet(self.sheet_name[:31])
            stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
            bold = book.add_format({"bold": True})
            sheet.write_row(0, 0, arrow_schema.names, bold)
            rows = 0
            for batch in batches:
                columns = [c.to_pylist() for c in batch.columns]
                for values in zip(*columns):
                    rows += 1
                    if rows > MAX_ROWS:
                        book.close()
                        raise TooBigForExcel(f"the batch has more than {MAX_ROWS:,} rows, Excel's limit for one "
                                             "worksheet; export it as parquet or csv, or publish an aggregate")
                    for col, value in enumerate(values):
                        _write(sheet, rows, col, value, stamp, arrow_schema.names[col])
            book.close()
            sink = HashingSink(fs.open_output_stream(f"{folder}/{name}"))
            try:
                with open(local, "rb") as fh:
                    shutil.copyfileobj(fh, sink, 1 << 20)
                sink.close()
            except BaseException:
                sink.discard()
                raise
        return [PartFile(name, rows, sink.size, sink.hexdigest())]


def _write(sheet: Any, row: int, col: int, value: Any, stamp: Any, column: str) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, int):
        # Excel shows 15 significant digits: a bigger id keeps its digits as text.
        sheet.write_number(row, col, value) if abs(value) < 10 ** EXACT_DIGITS else sheet.write_string(row, col, str(value))
    elif isinstance(value, float):
        sheet.write_number(row, col, value) if math.isfinite(value) else sheet.write_string(row, col, str(value))
    elif isinstance(value, Decimal):
        exact = len(value.as_tuple().digits) <= EXACT_DIGITS
        sheet.write_number(row, col, float(value)) if exact else sheet.write_string(row, col, str(value))
    elif isinstance(value, dt.datetime):
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        sheet.write_datetime(row, col, naive, stamp)
    elif isinstance(value, dt.date):
        sheet.write_datetime(row, col, dt.datetime.combine(value, dt.time()))
    else:
        text = value.hex() if isinstance(value, bytes) else str(value)
        if len(text) > MAX_CELL_CHARS:
            raise TooBigForExcel(f"row {row}, column {column!r}: {len(text):,} characters, more than an Excel cell "
                                 f"holds ({MAX_CELL_CHARS:,}); export it as parquet or csv")
        sheet.write_string(row, col, text)
