"""Objects in S3 or GCS (CSV, JSON lines, Parquet) for one batch, streamed as record batches.

The definition's path is a Jinja template rendered once for every day of the batch, so a
three-day batch over `s3://b/events/{{ ds }}/*.csv` reads exactly three folders. Wildcards:
`*` and `?` stay inside one path segment, `**` crosses segments; a path without wildcards is
one object or, failing that, everything under it as a prefix (names starting with `_` or `.`,
like `_SUCCESS`, skipped). Listing is recursive by prefix, the one listing every store and the
GCS emulator agree on (it has no delimiter listing and no HEAD; pyarrow's GCS client needs neither).

Memory stays flat however large or many the objects: Parquet goes through pyarrow's dataset
scanner with bounded read-ahead; CSV and JSON lines are parsed block by block from one object at
a time (pyarrow.csv.open_csv / pyarrow.json.open_json), compressed objects (.gz, .zst, .bz2)
decompressed on the way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from dagspec.connections import ConnectionInfo
from dagspec.errors import StepFailed
from dagspec.filesystems import check_scheme, filesystem, split_uri
from dagspec.sources.contract import Rows
from dagspec.spec.model import ObjectSource
from dagspec.windows import Batch

if TYPE_CHECKING:
    from dagspec.spec.sources import ObjectSource

BLOCK_BYTES = 4 << 20  # CSV/JSON parse block: bounds memory per batch in flight
# pyarrow reads an S3/GCS stream with one ranged GET per fill of this buffer: 4 MB reads are
# request-bound (latency on S3, and moto re-copies the whole object per request: 8.8 s vs 1.4 s
# for 150 MB at 64 MB), so fetch in larger slices. Peak memory of a whole extract, measured: about
# +135 MB at 8 MB, +220 MB at 32 MB, flat when the object doubles (bench/objects_bench.py).
READ_BUFFER = 16 << 20
BATCH_READAHEAD = 4
FRAGMENT_READAHEAD = 2
_WILDCARD = re.compile(r"[*?\[]")


def read_batches(info: ConnectionInfo, source: ObjectSource, batch: Batch, chunk_rows: int) -> Rows:
    scheme, _ = split_uri(source.path)
    check_scheme(info, scheme, source.path)
    patterns = rendered_paths(source.path, batch)
    fs = filesystem(info, split_uri(patterns[0])[1].split("/", 1)[0])
    files = sorted({f for p in patterns for f in matching(fs, split_uri(p)[1])})
    if not files:
        shown = ", ".join(patterns[:3]) + (f" (and {len(patterns) - 3} more)" if len(patterns) > 3 else "")
        raise StepFailed(
            f"source connection {info.conn_id!r}: no objects match {shown} for batch_date={batch.batch_date}"
        )
    if source.format == "parquet":
        dataset = _parquet_dataset(fs, files, info)
        scanner = dataset.scanner(batch_size=chunk_rows, batch_readahead=BATCH_READAHEAD,
                                  fragment_readahead=FRAGMENT_READAHEAD)
        return dataset.schema, _checked(scanner.to_batches(), info, source)
    schema, batches = _text_batches(fs, files, info, source, chunk_rows)
    return schema, _checked(batches, info, source)


def days_of(batch: Batch) -> list[date]:
    """The batch's days, counted from its start like Airflow's `ds`: a [03:00, 03:00) window is one day,
    the day it starts, so back-to-back windows never read a folder twice."""
    out, k = [], 0
    while batch.from_at + timedelta(days=k) < batch.to_at:
        out.append(batch.from_at.date() + timedelta(days=k))
        k += 1
    return out or [batch.batch_date]


def rendered_paths(template: str, batch: Batch) -> list[str]:
    from dagspec.sql import render

    out: list[str] = []
    for day in days_of(batch):
        context = {"ds": day.isoformat(), "ds_nodash": day.strftime("%Y%m%d"), "day": day,
                   "batch_date": batch.batch_date, "from_date": batch.from_at, "to_date": batch.to_at}
        path = render(template, context, {}).strip()
        if path not in out:
            out.append(path)
    return out


def glob_regex(pattern: str) -> re.Pattern:
    """Path glob -> regex: `**` any depth, `*` and `?` within a segment, `[...]` a character class."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1:close]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def matching(fs: pafs.FileSystem, path: str) -> list[str]:
    """Non-empty objects a path or glob (bucket/key form) names."""
    wild = _WILDCARD.search(path)
    if wild is None:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [path] if info.size else []
        return [e.path for e in _listing(fs, path) if not _hidden(e.path[len(path):])]
    base = path[:wild.start()].rsplit("/", 1)[0]
    regex = glob_regex(path)
    return [e.path for e in _listing(fs, base) if regex.match(e.path)]


def _listing(fs: pafs.FileSystem, prefix: str) -> list[pafs.FileInfo]:
    entries = fs.get_file_info(pafs.FileSelector(prefix.rstrip("/"), recursive=True, allow_not_found=True))
    return [e for e in entries if e.type == pafs.FileType.File and e.size]


def _hidden(relative: str) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.strip("/").split("/"))


def _parquet_dataset(fs: pafs.FileSystem, files: list[str], info: ConnectionInfo) -> pads.Dataset:
    dataset = pads.dataset(files, filesystem=fs, format="parquet")
    if len(files) > 1:
        # Files written on different days drift (a new column, int32 -> int64): read all footers and
        # unify, instead of trusting the first file's schema and failing halfway through.
        try:
            schema = pa.unify_schemas([f.physical_schema for f in dataset.get_fragments()],
                                      promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise StepFailed(f"source connection {info.conn_id!r}: the Parquet objects for this batch have "
                             f"incompatible schemas: {exc}") from None
        dataset = pads.dataset(files, filesystem=fs, format="parquet", schema=schema)
    return dataset


def _text_batches(fs: pafs.FileSystem, files: list[str], info: ConnectionInfo, source: ObjectSource,
                  chunk_rows: int) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """CSV / JSON lines: one sequential GET per object (a ranged request per block costs a round trip each),
    parsed block by block. Types come from the first object (and column_types); every later object is
    read with exactly those types, so the partition has one schema."""
    declared = {name: arrow_type(t) for name, t in (source.column_types or {}).items()}
    first = _open_text(fs, files[0], source, declared)
    schema = first.schema
    fixed = {f.name: f.type for f in schema}

    def batches() -> Iterator[pa.RecordBatch]:
        reader = first
        for i, path in enumerate(files):
            if i:
                reader = _open_text(fs, path, source, fixed)
            try:
                for block in reader:
                    block = block if block.schema == schema else _conform(block, schema, info, path)
                    for start in range(0, block.num_rows, chunk_rows):  # zero-copy slices
                        yield block.slice(start, chunk_rows)
            finally:
                reader.stream.close()

    return schema, batches()


class _Reader:
    def __init__(self, reader: pa.RecordBatchReader, stream: pa.NativeFile):
        self.reader, self.stream, self.schema = reader, stream, reader.schema

    def __iter__(self):
        return iter(self.reader)


def _open_text(fs: pafs.FileSystem, path: str, source: ObjectSource, types: dict[str, pa.DataType]) -> _Reader:
    # open_input_stream detects compression from the name: a .gz/.bz2/.zst object is decompressed on the way.
    stream = fs.open_input_stream(path, buffer_size=READ_BUFFER)
    try:
        if source.format == "csv":
            import pyarrow.csv as pacsv

            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pacsv.ParseOptions(delimiter=source.delimiter),
                convert_options=pacsv.ConvertOptions(column_types=types),
            )
        else:
            import pyarrow.json as pajson

            reader = pajson.open_json(
                stream,
                read_options=pajson.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pajson.ParseOptions(explicit_schema=pa.schema(types) if types else None,
                                                  unexpected_field_behavior="infer"),
            )
    except BaseException:
        stream.close()
        raise
    return _Reader(reader, stream)


def _conform(batch: pa.RecordBatch, schema: pa.Schema, info: ConnectionInfo, path: str) -> pa.RecordBatch:
    """A later object's batch in the first object's column order; absent columns are NULL, new ones an error."""
    extra = [n for n in batch.schema.names if n not in schema.names]
    if extra:
        raise StepFailed(f"source connection {info.conn_id!r}: {path} has columns the first object of the batch "
                         f"lacks: {', '.join(extra)}")
    arrays = [batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
              for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _checked(batches: Iterator[pa.RecordBatch], info: ConnectionInfo, source: ObjectSource) -> Iterator[pa.RecordBatch]:
    """Type inference looks at the first block only; say how to fix it when a later block disagrees."""
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        hint = "" if source.format == "parquet" else " (set 'column_types' for columns whose type is inferred wrongly)"
        raise StepFailed(f"source connection {info.conn_id!r}: reading {source.path}: {str(exc).splitlines()[0]}{hint}") from None


_SIMPLE = {
    "bool": pa.bool_(), "boolean": pa.bool_(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "float32": pa.float32(), "float64": pa.float64(), "double": pa.float64(),
    "string": pa.string(), "binary": pa.binary(),
    "date": pa.date32(), "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
}
_DECIMAL = re.compile(r"decimal\((\d{1,2}),\s*(\d{1,2})\)")


def arrow_type(name: str) -> pa.DataType:
    """A column type as written in a definition (the model checks the spelling) -> Arrow."""
    name = name.strip().lower()
    if name in _SIMPLE:
        return _SIMPLE[name]
    m = _DECIMAL.fullmatch(name)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    raise ValueError(f"unknown column type {name!r}")
