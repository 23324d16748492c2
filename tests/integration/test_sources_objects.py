"""Objects in S3 (moto server) and GCS (gcp-storage-emulator) as an extract source: formats, the window's
dates in the path picking exactly the right objects, Parquet types kept, streaming in bounded batches."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from dagspec.connections import parse_connection
from dagspec.errors import StepFailed
from dagspec.sources import read_batches
from dagspec.spec.model import ExtractStep
from dagspec.windows import Batch, Window

pytestmark = pytest.mark.service

DAYS = [date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)]


class Bucket:
    def __init__(self, kind: str, server):
        self.kind, self.server = kind, server
        self.name = server.make_bucket("src")
        self.scheme = "s3" if kind == "s3" else "gs"
        self.info = parse_connection("landing", server.connection_json())

    def put(self, key: str, body: bytes) -> None:
        if self.kind == "s3":
            self.server.client().put_object(Bucket=self.name, Key=key, Body=body)
        else:
            self.server.client().bucket(self.name).blob(key).upload_from_string(body)

    def uri(self, path: str) -> str:
        return f"{self.scheme}://{self.name}/{path}"


@pytest.fixture(params=["s3", "gcs"])
def bucket(request) -> Bucket:
    return Bucket(request.param, request.getfixturevalue(f"{request.param}_server"))


def source(path: str, fmt: str, **kw):
    step = ExtractStep.model_validate({
        "id": "x", "kind": "extract", "target": {"schema": "raw", "table": "t"},
        "source": {"kind": "objects", "conn_id": "landing", "path": path, "format": fmt, **kw}})
    return step.source


def day_batch(day: date, days: int = 1) -> Batch:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Batch(day, start, start + timedelta(days=days))


def read(bucket: Bucket, src, batch: Batch, chunk_rows: int = 50_000) -> tuple[pa.Schema, pa.Table]:
    schema, chunks = read_batches(bucket.info, src, batch, chunk_rows)
    batches = list(chunks)
    assert all(b.schema == schema for b in batches)
    return schema, pa.Table.from_batches(batches, schema=schema)


def events(day: date, n: int = 3) -> list[dict]:
    return [{"id": day.day * 100 + i, "kind": f"k{i}", "amount": i * 1.5} for i in range(n)]


def csv_bytes(rows: list[dict]) -> bytes:
    lines = ["id,kind,amount"] + [f"{r['id']},{r['kind']},{r['amount']}" for r in rows]
    return ("\n".join(lines) + "\n").encode()


def jsonl_bytes(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def land_events(bucket: Bucket, fmt: str) -> None:
    """Two objects a day under events/<ds>/, plus the neighbours that must not be read."""
    for day in DAYS:
        rows = events(day, 4)
        for part, chunk in enumerate([rows[:2], rows[2:]]):
            body = {"csv": csv_bytes, "jsonl": jsonl_bytes}[fmt](chunk) if fmt != "parquet" else \
                parquet_bytes(pa.Table.from_pylist(chunk))
            bucket.put(f"events/{day.isoformat()}/part-{part}.{fmt}", body)
    bucket.put(f"events/{DAYS[1].isoformat()}/_SUCCESS", b"")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_each_format_reads_exactly_the_batch_day(bucket, fmt):
    land_events(bucket, fmt)
    src = source(bucket.uri(f"events/{{{{ ds }}}}/*.{fmt}"), fmt)
    schema, table = read(bucket, src, day_batch(DAYS[1]))
    assert schema.names == ["id", "kind", "amount"]
    assert pa.types.is_integer(schema.field("id").type) and pa.types.is_floating(schema.field("amount").type)
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == events(DAYS[1], 4)


def test_a_multi_day_batch_reads_every_day_it_covers_and_no_other(bucket):
    land_events(bucket, "csv")
    src = source(bucket.uri("events/{{ ds }}/*.csv"), "csv")
    _, table = read(bucket, src, day_batch(DAYS[0], days=2))
    assert sorted(table.column("id").to_pylist()) == sorted(r["id"] for d in DAYS[:2] for r in events(d, 4))


def test_prefix_reads_everything_under_it_but_markers(bucket):
    land_events(bucket, "jsonl")
    bucket.put(f"events/{DAYS[1].isoformat()}/.inprogress/part-9.jsonl", jsonl_bytes(events(date(2025, 9, 9))))
    src = source(bucket.uri("events/{{ ds }}/"), "jsonl")
    _, table = read(bucket, src, day_batch(DAYS[1]))
    assert sorted(table.column("id").to_pylist()) == [r["id"] for r in events(DAYS[1], 4)]


def test_strftime_layout_and_double_star(bucket):
    for day in DAYS:
        bucket.put(f"exports/{day:%Y/%m/%d}/region=eu/h01/data.csv", csv_bytes(events(day, 2)))
        bucket.put(f"exports/{day:%Y/%m/%d}/region=us/data.csv", csv_bytes(events(day + timedelta(days=10), 1)))
        bucket.put(f"exports/{day:%Y/%m/%d}/region=eu/notes.txt", b"not data")
    src = source(bucket.uri("exports/{{ day.strftime('%Y/%m/%d') }}/**/*.csv"), "csv")
    _, table = read(bucket, src, day_batch(DAYS[2]))
    assert sorted(table.column("id").to_pylist()) == [300, 301, 1300]
    one_level = source(bucket.uri("exports/{{ day.strftime('%Y/%m/%d') }}/*/data.csv"), "csv")
    _, table = read(bucket, one_level, day_batch(DAYS[2]))
    assert table.column("id").to_pylist() == [1300]


def test_parquet_keeps_exact_types(bucket):
    schema = pa.schema([
        ("id", pa.int64()), ("price", pa.decimal128(12, 2)), ("at", pa.timestamp("us", tz="UTC")),
        ("local_at", pa.timestamp("us")), ("day", pa.date32()), ("name", pa.large_string()),
        ("blob", pa.binary()), ("ok", pa.bool_()), ("small", pa.int16()),
    ])
    rows = [
        {"id": 1, "price": Decimal("12345678.91"), "at": datetime(2025, 3, 2, 23, 59, 59, 999999, tzinfo=UTC),
         "local_at": datetime(2025, 3, 2, 1, 2, 3), "day": date(2025, 3, 2), "name": "Grüße, 世界 🎉",
         "blob": b"\x00\xff", "ok": True, "small": -7},
        {"id": 2, "price": None, "at": None, "local_at": None, "day": None, "name": None, "blob": None, "ok": None,
         "small": None},
    ]
    bucket.put("typed/2025-03-02/a.parquet", parquet_bytes(pa.Table.from_pylist(rows, schema=schema)))
    got_schema, table = read(bucket, source(bucket.uri("typed/{{ ds }}/a.parquet"), "parquet"), day_batch(DAYS[1]))
    assert got_schema == schema
    assert table.to_pylist() == rows


def test_parquet_files_with_drifting_schemas_are_unified(bucket):
    bucket.put("drift/2025-03-02/a.parquet", parquet_bytes(pa.table({"id": pa.array([1], pa.int32())})))
    bucket.put("drift/2025-03-02/b.parquet",
               parquet_bytes(pa.table({"id": pa.array([2], pa.int64()), "extra": ["x"]})))
    schema, table = read(bucket, source(bucket.uri("drift/{{ ds }}/*.parquet"), "parquet"), day_batch(DAYS[1]))
    assert schema == pa.schema([("id", pa.int64()), ("extra", pa.string())])
    assert sorted(table.to_pylist(), key=lambda r: r["id"]) == [{"id": 1, "extra": None}, {"id": 2, "extra": "x"}]


def test_csv_column_types_override_inference(bucket):
    bucket.put("typed/2025-03-02/a.csv", b"id;amount;at\n1;0010.50;2025-03-02T10:00:00Z\n2;;2025-03-02T11:00:00Z\n")
    src = source(bucket.uri("typed/{{ ds }}/*.csv"), "csv", delimiter=";",
                 column_types={"amount": "decimal(12,2)", "at": "timestamptz", "id": "int32"})
    schema, table = read(bucket, src, day_batch(DAYS[1]))
    assert schema.field("amount").type == pa.decimal128(12, 2)
    assert schema.field("id").type == pa.int32()
    assert table.column("amount").to_pylist() == [Decimal("10.50"), None]
    assert table.column("at").to_pylist()[0] == datetime(2025, 3, 2, 10, tzinfo=UTC)


def test_large_csv_streams_in_chunks(bucket):
    rows = 300_000
    body = b"id,kind,amount\n" + b"".join(b"%d,k%d,%d.5\n" % (i, i % 7, i) for i in range(rows))
    bucket.put("big/2025-03-02/big.csv", body)
    src = source(bucket.uri("big/{{ ds }}/big.csv"), "csv")
    schema, chunks = read_batches(bucket.info, src, day_batch(DAYS[1]), chunk_rows=20_000)
    sizes, total = [], 0
    for b in chunks:
        sizes.append(b.num_rows)
        total += pc.sum(b.column("id")).as_py()
    assert sum(sizes) == rows and total == rows * (rows - 1) // 2
    assert len(sizes) > 5 and max(sizes) <= 20_000


def test_no_matching_objects_is_one_clear_error(bucket):
    land_events(bucket, "csv")
    src = source(bucket.uri("events/{{ ds }}/*.csv"), "csv")
    with pytest.raises(StepFailed, match=r"source connection 'landing': no objects match .*2025-03-09.*batch_date=2025-03-09"):
        read(bucket, src, day_batch(date(2025, 3, 9)))


def test_a_connection_of_the_other_cloud_is_refused(bucket):
    other = "gs" if bucket.scheme == "s3" else "s3"
    src = source(f"{other}://{bucket.name}/events/{{{{ ds }}}}/*.csv", "csv")
    with pytest.raises(ValueError, match="'landing'"):
        read(bucket, src, day_batch(DAYS[1]))


def test_definition_errors_are_caught_before_running():
    with pytest.raises(ValueError, match="unknown template variable"):
        source("s3://b/events/{{ dss }}/*.csv", "csv")
    with pytest.raises(ValueError, match="pattern"):
        source("/local/events/*.csv", "csv")
    with pytest.raises(ValueError):
        source("s3://b/x.csv", "csv", column_types={"a": "varchar"})


def test_extract_step_from_s3_into_the_store(data_home, s3_server, monkeypatch):
    """The whole extract stage: the definition's objects source, dispatch, the staged partition."""
    from dagspec.runner import run_step
    from dagspec.spec.model import Pipeline
    from dagspec.store import Store

    bucket = Bucket("s3", s3_server)
    land_events(bucket, "parquet")
    monkeypatch.setenv("AIRFLOW_CONN_LANDING", s3_server.connection_json())
    pipeline = Pipeline.model_validate({
        "dag_id": "objects_demo", "start_date": "2025-03-01", "batch_days": 1,
        "steps": [{"id": "events", "kind": "extract", "target": {"schema": "raw", "table": "events"},
                   "source": {"kind": "objects", "conn_id": "landing", "format": "parquet",
                              "path": bucket.uri("events/{{ ds }}/*.parquet")}}]})
    window = Window(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 3, tzinfo=UTC))
    rows = run_step(pipeline, "events", window.start, window.end)
    assert rows == {"2025-03-01": 4, "2025-03-02": 4}
    store = Store(data_home / "store")
    assert store.batch_dates("raw", "events") == DAYS[:2]
    staged = store.dataset("raw", "events", [DAYS[1]]).to_table().to_pylist()
    assert sorted(staged, key=lambda r: r["id"]) == events(DAYS[1], 4)


def test_glob_and_days_rules():
    from dagspec.sources.objects import days_of, glob_regex

    rx = glob_regex("b/ev/2025-03-0[12]/**/part-?.csv")
    assert rx.match("b/ev/2025-03-01/part-1.csv") and rx.match("b/ev/2025-03-02/x/y/part-2.csv")
    assert not rx.match("b/ev/2025-03-03/part-1.csv") and not rx.match("b/ev/2025-03-01/part-10.csv")
    assert not glob_regex("b/*.csv").match("b/sub/a.csv")
    start = datetime(2025, 3, 1, 3, tzinfo=UTC)  # a "0 3 * * *" window: one day, the one it starts on
    assert days_of(Batch(start.date(), start, start + timedelta(days=1))) == [date(2025, 3, 1)]
    assert days_of(day_batch(DAYS[0], days=3)) == DAYS


def test_compressed_csv_is_read_through(bucket):
    import gzip

    bucket.put("gz/2025-03-02/a.csv.gz", gzip.compress(csv_bytes(events(DAYS[1], 3))))
    _, table = read(bucket, source(bucket.uri("gz/{{ ds }}/*.csv.gz"), "csv"), day_batch(DAYS[1]))
    assert table.to_pylist() == events(DAYS[1], 3)


def test_later_objects_are_read_with_the_first_ones_types(bucket):
    # the second file alone would infer "kind" as null and put it first; it is read with the first file's layout
    bucket.put("mix/2025-03-02/a.csv", b"id,kind\n1,x\n")
    bucket.put("mix/2025-03-02/b.csv", b"kind,id\n,2\n")
    schema, table = read(bucket, source(bucket.uri("mix/{{ ds }}/*.csv"), "csv"), day_batch(DAYS[1]))
    assert schema.names == ["id", "kind"]
    assert table.to_pylist() == [{"id": 1, "kind": "x"}, {"id": 2, "kind": ""}]  # CSV: an empty string stays one
