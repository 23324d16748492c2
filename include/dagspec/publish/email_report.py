"""A batch sent by e-mail: an HTML table in the message, or the rows attached as one CSV or Excel file.

The limits are checked before anything is sent: more than `max_rows` rows, or a message larger than
`max_bytes`, fails the step naming the limit (a report nobody can open helps no one, and most mail
servers refuse 25 MB). Every value is HTML-escaped in the table; an Excel attachment is written by
store_xlsx's part writer, so its cells follow the same rules as an Excel export (no formulas).
"""

from __future__ import annotations

import html
import io
import tempfile
from email.message import EmailMessage
from typing import TYPE_CHECKING

import pyarrow as pa

from dagspec.connections import ConnectionInfo
from dagspec.publish import read_at_most
from dagspec.smtp import send_email, sender_of

if TYPE_CHECKING:
    from dagspec.spec.model import EmailTarget

XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


class ReportTooLarge(ValueError):
    pass


def send_report(info: ConnectionInfo, target: EmailTarget, subject: str, title: str, reader: pa.RecordBatchReader
                ) -> int:
    """Send the rows `reader` yields; returns how many were sent."""
    table = read_at_most(reader, target.max_rows)
    if table.num_rows > target.max_rows:
        raise ReportTooLarge(f"the batch has more than {target.max_rows:,} rows, this e-mail target's max_rows; "
                             "raise max_rows or send an aggregate")
    msg = EmailMessage()
    msg["Subject"] = subject.replace("\r", " ").replace("\n", " ")  # a rendered subject must not add headers
    msg["From"] = sender_of(info)
    msg["To"] = ", ".join(target.to)
    intro = f"{title}: {table.num_rows:,} row(s)."
    if target.format == "html":
        msg.set_content(intro + " The table is in the HTML part of this message.")
        msg.add_alternative(_html(title, table), subtype="html")
    else:
        msg.set_content(intro + f" They are attached as {target.format.upper()}.")
        data = _csv(table) if target.format == "csv" else _xlsx(table, title)
        maintype, subtype = ("text", "csv") if target.format == "csv" else XLSX_TYPE
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=f"{title}.{target.format}")
    size = len(msg.as_bytes())
    if size > target.max_bytes:
        raise ReportTooLarge(f"the report e-mail would be {size:,} bytes, more than its max_bytes "
                             f"({target.max_bytes:,}); raise max_bytes, attach xlsx (smaller), or send an aggregate")
    send_email(info, msg)
    return table.num_rows


def _html(title: str, table: pa.Table) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in table.column_names)
    rows = []
    for row in table.to_pylist():
        cells = "".join(f"<td>{'' if v is None else html.escape(str(v))}</td>" for v in row.values())
        rows.append(f"<tr>{cells}</tr>")
    return (f"<html><body><h3>{html.escape(title)}</h3><table border=\"1\" cellpadding=\"4\" "
            f"style=\"border-collapse:collapse\"><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table></body></html>")


def _csv(table: pa.Table) -> bytes:
    import pyarrow.csv as pacsv

    from dagspec.publish.csv_cells import escape_table

    out = io.BytesIO()
    pacsv.write_csv(escape_table(table), out)
    return out.getvalue()


def _xlsx(table: pa.Table, title: str) -> bytes:
    import pyarrow.fs as pafs

    from dagspec.store_xlsx import XlsxPart

    with tempfile.TemporaryDirectory(prefix="dagspec-report-") as tmp:
        XlsxPart(sheet_name=title).write(pafs.LocalFileSystem(), tmp, lambda i: "report.xlsx", table.schema,
                                          table.to_batches(), [])
        with open(f"{tmp}/report.xlsx", "rb") as fh:
            return fh.read()
