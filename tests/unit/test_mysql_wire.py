"""The text-protocol row reader on hand-made packets: every length prefix, NULLs, a row split over several
packets (16 MiB and more), reads that end mid-packet, and an error packet in the middle of the rows.
(The reader against a real MariaDB is in tests/integration/test_sources_sql.py.)"""

from __future__ import annotations

import io

import pyarrow as pa
import pymysql
import pytest

from dagspec.sources.mysql_wire import WireColumn, _blocks, _parse

COLUMNS = [WireColumn("id", pa.int64()), WireColumn("text", pa.string()), WireColumn("raw", pa.binary())]
SCHEMA = pa.schema([(c.name, c.type) for c in COLUMNS])


def lenenc(value: bytes | None) -> bytes:
    if value is None:
        return b"\xfb"
    n = len(value)
    if n < 251:
        head = bytes([n])
    elif n < 1 << 16:
        head = b"\xfc" + n.to_bytes(2, "little")
    elif n < 1 << 24:
        head = b"\xfd" + n.to_bytes(3, "little")
    else:
        head = b"\xfe" + n.to_bytes(8, "little")
    return head + value


def packets(payload: bytes, seq: int) -> tuple[bytes, int]:
    """The payload as the server frames it: pieces of 0xFFFFFF bytes, the last one shorter (maybe empty)."""
    out = b""
    while True:
        piece, payload = payload[:0xFFFFFF], payload[0xFFFFFF:]
        out += len(piece).to_bytes(3, "little") + bytes([seq % 256]) + piece
        seq += 1
        if len(piece) < 0xFFFFFF:
            return out, seq


def wire(rows: list[tuple], end: bytes = b"\xfe\x00\x00\x02\x00") -> bytes:
    out, seq = b"", 3
    for row in rows:
        payload = b"".join(lenenc(None if v is None else (v if isinstance(v, bytes) else str(v).encode()))
                           for v in row)
        framed, seq = packets(payload, seq)
        out += framed
    return out + len(end).to_bytes(3, "little") + bytes([seq % 256]) + end


def read_all(data: bytes, chunk_rows: int = 2, read_size: int = 7) -> list[dict]:
    stream = io.BytesIO(data)
    batches = [_parse(block, starts, COLUMNS, SCHEMA)
               for block, starts in _blocks(lambda n: stream.read(min(n, read_size)), chunk_rows)]
    assert stream.read() == b""  # nothing read past the end-of-rows packet
    return pa.Table.from_batches(batches, SCHEMA).to_pylist()


def test_every_length_prefix_nulls_and_unicode():
    rows = [(1, "naïve 🎉", b"\x00\xff"), (2, None, None), (3, "", b""), (4, "x" * 300, b"\x01" * 70_000)]
    got = read_all(wire(rows))
    assert got == [{"id": r[0], "text": r[1], "raw": r[2]} for r in rows]


def test_a_row_of_16_mib_and_more_comes_in_several_packets():
    big = "é" * (9 << 20)  # 18 MiB of UTF-8: the row spans two packets
    rows = [(1, "before", b"a"), (2, big, b"b"), (3, "after", b"c")]
    got = read_all(wire(rows), chunk_rows=10, read_size=1 << 20)
    assert [r["id"] for r in got] == [1, 2, 3] and got[1]["text"] == big and got[2]["text"] == "after"


def test_a_row_of_exactly_one_full_packet_ends_with_an_empty_one():
    # 0xFFFFFF bytes of payload: the server sends them, then an empty packet to say the row is complete.
    value = b"z" * (0xFFFFFF - 2 - 2 - 4)  # id "1" and text "t" take 2 bytes each, this value's prefix 4
    assert len(lenenc(b"1") + lenenc(b"t") + lenenc(value)) == 0xFFFFFF
    got = read_all(wire([(1, "t", value), (2, "u", b"")]), chunk_rows=10, read_size=1 << 20)
    assert [r["id"] for r in got] == [1, 2] and got[0]["raw"] == value


def test_an_error_packet_among_the_rows_raises_the_servers_error():
    error = b"\xff" + (1317).to_bytes(2, "little") + b"#70100" + b"Query execution was interrupted"
    with pytest.raises(pymysql.err.OperationalError, match="interrupted"):
        read_all(wire([(1, "a", b"")], end=error))


def test_a_connection_lost_mid_row_says_so():
    with pytest.raises(pymysql.err.OperationalError, match="Lost connection"):
        read_all(wire([(1, "a", b""), (2, "b", b"")])[:-12])
