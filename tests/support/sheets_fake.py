"""A small HTTP fake of the Google Sheets v4 API (no emulator exists), for the real gspread client.

It keeps spreadsheets in memory and serves what dagspec's Sheets publisher calls: spreadsheet
metadata, values get/update/clear and batchUpdate (updateSheetProperties, addSheet). It enforces
the grid (writes outside it fail as Sheets does) and a workbook cell limit, records every request,
and can answer the next N requests with an error (HTTP 429) to exercise retries.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

CELL_LIMIT = 10_000_000


@dataclass
class Sheet:
    sheet_id: int
    title: str
    rows: int = 1000
    cols: int = 26
    cells: dict[tuple[int, int], object] = field(default_factory=dict)

    def values(self) -> list[list]:
        if not self.cells:
            return []
        last_row = max(r for r, _ in self.cells)
        out = []
        for r in range(1, last_row + 1):
            row_cells = {c: v for (rr, c), v in self.cells.items() if rr == r}
            width = max(row_cells) if row_cells else 0
            out.append([row_cells.get(c, "") for c in range(1, width + 1)])
        return out


def col_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


_CELL = re.compile(r"^([A-Za-z]*)(\d*)$")


class FakeSheets:
    def __init__(self, cell_limit: int = CELL_LIMIT):
        self.cell_limit = cell_limit
        self.books: dict[str, dict] = {}
        self.requests: list[tuple[str, str, int]] = []
        self._fail: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- test controls -----------------------------------------------------------------------
    def add_spreadsheet(self, key: str, title: str = "Book", sheets=(("Sheet1", 1000, 26),)) -> None:
        self.books[key] = {"title": title, "sheets": [Sheet(i, t, r, c) for i, (t, r, c) in enumerate(sheets)]}

    def fail_next(self, count: int, status: int = 429) -> None:
        with self._lock:
            self._fail += [status] * count

    def sheet(self, key: str, title: str) -> Sheet:
        return next(s for s in self.books[key]["sheets"] if s.title == title)

    def writes(self) -> list[tuple[str, str, int]]:
        return [r for r in self.requests if r[0] in ("PUT", "POST")]

    # -- server ------------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                # Recorded before the reply goes out: once the client has its answer, the log has the request.
                fake.requests.append((self.command, self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}") if length else {}
                with fake._lock:
                    failing = fake._fail.pop(0) if fake._fail else None
                if failing:
                    return self._reply(failing, {"error": {"code": failing, "status": "RESOURCE_EXHAUSTED",
                                                           "message": "Quota exceeded (fake)"}})
                try:
                    status, out = fake.route(self.command, self.path, body)
                except ApiError as exc:
                    status, out = exc.status, {"error": {"code": exc.status, "message": str(exc),
                                                         "status": "INVALID_ARGUMENT"}}
                self._reply(status, out)

            do_GET = do_POST = do_PUT = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    # -- API ---------------------------------------------------------------------------------
    def route(self, method: str, raw_path: str, body: dict) -> tuple[int, dict]:
        parts = urlsplit(raw_path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(?::batchUpdate|/values/(.+?)(:clear)?)?", path)
        if not m:
            raise ApiError(404, f"no such endpoint {path}")
        key, a1, clear = m.group(1), m.group(2), m.group(3)
        if key not in self.books:
            raise ApiError(404, f"Requested entity was not found: {key}")
        book = self.books[key]
        with self._lock:
            if path.endswith(":batchUpdate") and method == "POST":
                return 200, self._batch_update(key, book, body)
            if a1 is None and method == "GET":
                return 200, self._metadata(key, book)
            if a1 is not None and clear and method == "POST":
                sheet, (r1, c1, r2, c2) = self._range(book, a1)
                for cell in [k for k in sheet.cells if r1 <= k[0] <= r2 and c1 <= k[1] <= c2]:
                    del sheet.cells[cell]
                return 200, {"spreadsheetId": key, "clearedRange": a1}
            if a1 is not None and method == "PUT":
                sheet, (r1, c1, _, _) = self._range(book, a1)
                values = body.get("values") or []
                rows, cols = len(values), max((len(v) for v in values), default=0)
                if r1 + rows - 1 > sheet.rows or c1 + cols - 1 > sheet.cols:
                    raise ApiError(400, f"Range ({sheet.title}!{a1}) exceeds grid limits. Max rows: {sheet.rows}, "
                                        f"max columns: {sheet.cols}")
                raw = query.get("valueInputOption", ["RAW"])[0] == "RAW"
                for i, row in enumerate(values):
                    for j, v in enumerate(row):
                        if v == "" or v is None:
                            sheet.cells.pop((r1 + i, c1 + j), None)
                        else:
                            sheet.cells[(r1 + i, c1 + j)] = v if raw else str(v)
                return 200, {"spreadsheetId": key, "updatedRange": a1, "updatedRows": rows, "updatedColumns": cols,
                             "updatedCells": sum(len(v) for v in values)}
            if a1 is not None and method == "GET":
                sheet, _ = self._range(book, a1)
                return 200, {"range": a1, "majorDimension": "ROWS", "values": sheet.values()}
        raise ApiError(404, f"{method} {path} is not served by the fake")

    def _metadata(self, key: str, book: dict) -> dict:
        return {"spreadsheetId": key, "properties": {"title": book["title"], "locale": "en_US",
                                                     "timeZone": "Etc/UTC"},
                "sheets": [{"properties": {"sheetId": s.sheet_id, "title": s.title, "index": i, "sheetType": "GRID",
                                           "gridProperties": {"rowCount": s.rows, "columnCount": s.cols}}}
                           for i, s in enumerate(book["sheets"])]}

    def _batch_update(self, key: str, book: dict, body: dict) -> dict:
        replies = []
        for req in body.get("requests", []):
            if "updateSheetProperties" in req:
                props = req["updateSheetProperties"]["properties"]
                sheet = next(s for s in book["sheets"] if s.sheet_id == props["sheetId"])
                grid = props.get("gridProperties", {})
                rows, cols = grid.get("rowCount", sheet.rows), grid.get("columnCount", sheet.cols)
                self._check_limit(book, sheet, rows, cols)
                sheet.rows, sheet.cols = rows, cols
                replies.append({})
            elif "addSheet" in req:
                props = req["addSheet"]["properties"]
                grid = props.get("gridProperties", {})
                sheet = Sheet(max(s.sheet_id for s in book["sheets"]) + 1, props["title"],
                              grid.get("rowCount", 1000), grid.get("columnCount", 26))
                self._check_limit(book, None, sheet.rows, sheet.cols)
                book["sheets"].append(sheet)
                replies.append({"addSheet": {"properties": {"sheetId": sheet.sheet_id, "title": sheet.title,
                                                            "index": len(book["sheets"]) - 1,
                                                            "gridProperties": {"rowCount": sheet.rows,
                                                                               "columnCount": sheet.cols}}}})
            else:
                raise ApiError(400, f"request {list(req)} is not served by the fake")
        return {"spreadsheetId": key, "replies": replies}

    def _check_limit(self, book: dict, changing: Sheet | None, rows: int, cols: int) -> None:
        total = sum(s.rows * s.cols for s in book["sheets"] if s is not changing) + rows * cols
        if total > self.cell_limit:
            raise ApiError(400, f"This action would increase the number of cells in the workbook above the limit "
                                f"of {self.cell_limit} cells.")

    def _range(self, book: dict, a1: str):
        name, _, cells = a1.rpartition("!") if "!" in a1 else (a1, "", "")
        title = name[1:-1].replace("''", "'") if name.startswith("'") else name
        sheet = next((s for s in book["sheets"] if s.title == title), None)
        if sheet is None:
            raise ApiError(400, f"Unable to parse range: {a1}")
        if not cells:
            return sheet, (1, 1, sheet.rows, sheet.cols)
        start, _, end = cells.partition(":")
        (sc, sr), (ec, er) = _CELL.match(start).groups(), _CELL.match(end or start).groups()
        return sheet, (int(sr or 1), col_number(sc) if sc else 1,
                       int(er) if er else sheet.rows, col_number(ec) if ec else sheet.cols)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
