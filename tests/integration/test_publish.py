"""Publish targets on real servers: store files (Parquet/CSV), BigQuery (local-bigquery), Google Sheets
(an HTTP fake of the Sheets v4 API driven by the real gspread client), and the validation gate in front."""

from __future__ import annotations

import csv
import json
import sqlite3
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.bigquery_emulator import client as bq_client
from support.day_runs import run_day as run
from support.day_runs import write_definition
from support.expected import expected_revenue, warehouse_rows
from support.sheets_fake import FakeSheets
from support.sheets_fixtures import SHEET_ID

from dagspec.connections import ConnectionInfo
from dagspec.publish.sheets import SheetTooLarge, publish_sheet
from dagspec.spec import load_definition
from dagspec.stages import StepFailed

D1, D2 = date(2025, 3, 1), date(2025, 3, 2)


@pytest.fixture()
def bq(bigquery_server, monkeypatch):
    """A fresh dataset name on the session's emulator; AIRFLOW_CONN_BQ points at the emulator."""
    monkeypatch.setenv("AIRFLOW_CONN_BQ", json.dumps({"conn_type": "google_cloud_platform", "extra": {
        "endpoint": bigquery_server["endpoint"], "project": bigquery_server["project"]}}))
    dataset = f"ds_pub_{uuid.uuid4().hex[:8]}"
    client = bq_client(bigquery_server["endpoint"])
    yield client, dataset
    client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)


def definition(tmp_path: Path, publish: dict, expectations=None) -> Path:
    steps = [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": expectations or [
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}}]},
        {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
        {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue", **publish},
    ]
    return write_definition(tmp_path, "t_publish", steps)


def revenue_rows(data_home: Path, day: date) -> list[tuple]:
    return [r[:-1] for r in expected_revenue(data_home / "source.db", day)]


# -- files ---------------------------------------------------------------------------------------------

def test_csv_and_parquet_exports_in_the_partition_layout_rerun_identically(tmp_path, data_home):
    path = definition(tmp_path, {"export": {"format": "csv", "target": {"schema": "exports", "table": "revenue"}}})
    run(path, D1)
    csv_file = data_home / "store/exports/revenue/batch_date=2025-03-01/part-00000.csv"
    with open(csv_file) as fh:
        got = list(csv.reader(fh))
    assert got[0] == ["channel", "orders", "lost_orders", "gross_revenue", "net_revenue"]
    assert [(c, int(o), int(lo), Decimal(g), Decimal(n)) for c, o, lo, g, n in got[1:]] == revenue_rows(data_home, D1)
    first = csv_file.read_bytes()
    run(path, D1)
    assert csv_file.read_bytes() == first
    assert sorted(p.name for p in csv_file.parent.parent.iterdir()) == ["batch_date=2025-03-01"]


@pytest.mark.parametrize("cloud", ["s3", "gcs"])
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_to_s3_and_gcs_in_the_partition_layout(tmp_path, data_home, monkeypatch, request, cloud, fmt):
    server = request.getfixturevalue(f"{cloud}_server")
    bucket = server.make_bucket("ds-pub")
    scheme = "s3" if cloud == "s3" else "gs"
    monkeypatch.setenv("AIRFLOW_CONN_LAKE", server.connection_json(f"{scheme}://{bucket}/exports"))
    path = definition(tmp_path, {"export": {"format": fmt, "conn_id": "lake",
                                            "target": {"schema": "mart", "table": "revenue"}}})
    fs = server.filesystem()
    prefix = f"{bucket}/exports/mart/revenue/batch_date=2025-03-01"

    def read() -> tuple[list, list]:
        manifest = json.loads(fs.open_input_stream(f"{prefix}/_manifest.json").read())
        names = [f["name"] for f in manifest["files"]]
        rows = []
        for name in names:
            with fs.open_input_file(f"{prefix}/{name}") as fh:
                if fmt == "parquet":
                    rows += [tuple(r.values()) for r in pq.read_table(fh).to_pylist()]
                else:
                    rows += [(c, int(o), int(lo), Decimal(g), Decimal(n))
                             for c, o, lo, g, n in list(csv.reader(fh.read().decode().splitlines()))[1:]]
        listing = sorted(i.path.rsplit("/", 1)[1] for i in fs.get_file_info(
            __import__("pyarrow.fs").fs.FileSelector(prefix, recursive=True)))
        return rows, listing

    run(path, D1)
    rows, listing = read()
    assert rows == revenue_rows(data_home, D1)
    assert len(listing) == 2 and listing[0] == "_manifest.json" and listing[1].endswith("." + fmt)
    run(path, D1)  # the re-run's parts replace the first run's: same rows, no leftovers
    rows2, listing2 = read()
    assert rows2 == rows and len(listing2) == 2 and listing2 != listing


# -- BigQuery ------------------------------------------------------------------------------------------

def bq_rows(client, table_id: str) -> list[tuple]:
    return [tuple(r.values()) for r in client.query(
        f"SELECT * FROM `{table_id}` ORDER BY batch_date, channel").result()]


def test_bigquery_replaces_exactly_the_batch_partition(tmp_path, data_home, bq):
    client, dataset = bq
    path = definition(tmp_path, {"bigquery": {"conn_id": "bq", "dataset": dataset, "table": "revenue"}})
    run(path, D1)
    run(path, D2)
    table_id = f"dagspec-test.{dataset}.revenue"
    want = [(*r, D1) for r in revenue_rows(data_home, D1)] + [(*r, D2) for r in revenue_rows(data_home, D2)]
    assert bq_rows(client, table_id) == want
    schema = [(f.name, f.field_type) for f in client.get_table(table_id).schema]
    assert schema == [("channel", "STRING"), ("orders", "INTEGER"), ("lost_orders", "INTEGER"),
                      ("gross_revenue", "NUMERIC"), ("net_revenue", "NUMERIC"), ("batch_date", "DATE")]
    assert client.get_table(table_id).time_partitioning.field == "batch_date"
    run(path, D1)  # a re-run replaces D1 only, identically
    assert bq_rows(client, table_id) == want


def test_bigquery_merge_on_a_key(tmp_path, data_home, bq):
    client, dataset = bq
    path = definition(tmp_path, {"bigquery": {"conn_id": "bq", "dataset": dataset, "table": "by_channel",
                                               "unique_key": ["channel"]}})
    run(path, D1)
    run(path, D2)
    assert bq_rows(client, f"dagspec-test.{dataset}.by_channel") == [(*r, D2) for r in revenue_rows(data_home, D2)]


def test_bigquery_schema_drift_is_a_clear_error(tmp_path, data_home, bq):
    client, dataset = bq
    from google.cloud import bigquery

    client.create_dataset(dataset)
    client.create_table(bigquery.Table(f"dagspec-test.{dataset}.revenue", schema=[
        bigquery.SchemaField("channel", "STRING"), bigquery.SchemaField("orders", "INTEGER"),
        bigquery.SchemaField("batch_date", "DATE")]))
    path = definition(tmp_path, {"bigquery": {"conn_id": "bq", "dataset": dataset, "table": "revenue"}})
    with pytest.raises(Exception, match=r"new column lost_orders INTEGER.*dagspec never changes a table's columns"):
        run(path, D1)
    assert bq_rows(client, f"dagspec-test.{dataset}.revenue") == []


# -- Google Sheets -------------------------------------------------------------------------------------

def test_sheet_refresh_with_fewer_rows_leaves_no_stale_rows(tmp_path, data_home, sheets):
    path = definition(tmp_path, {"sheet": {"conn_id": "sheets", "spreadsheet_id": SHEET_ID, "worksheet": "Revenue"}})
    run(path, D1)
    got = sheets.sheet(SHEET_ID, "Revenue").values()
    assert got[0] == ["channel", "orders", "lost_orders", "gross_revenue", "net_revenue"]
    assert [(r[0], r[1], r[2], Decimal(str(r[3])), Decimal(str(r[4]))) for r in got[1:]] == revenue_rows(data_home, D1)

    # The next refresh is one row shorter: the old last row must not survive.
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("DELETE FROM orders WHERE channel = (SELECT max(channel) FROM orders) "
                    "AND ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02'")
    run(path, D1)
    after = sheets.sheet(SHEET_ID, "Revenue").values()
    assert len(after) == len(got) - 1
    assert [(r[0], r[1]) for r in after[1:]] == [(r[0], r[1]) for r in revenue_rows(data_home, D1)]


def table_of(rows: int) -> pa.Table:
    return pa.table({"n": list(range(rows)), "label": [f"r{i}" for i in range(rows)]})


def sheet_conn(fake_endpoint: str, **extra) -> ConnectionInfo:
    return ConnectionInfo("sheets", "google_cloud_platform", extra={"endpoint": fake_endpoint,
                                                                     "retry_base_seconds": 0.01, **extra})


def test_sheet_cell_limit_is_checked_before_anything_is_written():
    fake = FakeSheets(cell_limit=300)
    fake.add_spreadsheet(SHEET_ID, sheets=(("Data", 10, 2), ("Other", 10, 10)))
    endpoint = fake.start()
    try:
        info = sheet_conn(endpoint, cell_limit=300)
        publish_sheet(info, SHEET_ID, "Data", table_of(50), max_rows=1000)  # 51 x 2 + 100 = 202 cells: fits
        assert len(fake.sheet(SHEET_ID, "Data").values()) == 51
        before = len(fake.writes())
        with pytest.raises(SheetTooLarge, match=r"over Google Sheets' limit of 300"):
            publish_sheet(info, SHEET_ID, "Data", table_of(150), max_rows=1000)
        assert len(fake.writes()) == before
        assert len(fake.sheet(SHEET_ID, "Data").values()) == 51  # the old content stays
    finally:
        fake.stop()


def test_sheet_writes_retry_with_backoff_on_429():
    fake = FakeSheets()
    fake.add_spreadsheet(SHEET_ID, sheets=(("Data", 10, 2),))
    endpoint = fake.start()
    try:
        fake.fail_next(3, status=429)
        assert publish_sheet(sheet_conn(endpoint), SHEET_ID, "Data", table_of(20), max_rows=100) == 20
        assert [s for _, _, s in fake.requests].count(429) == 3
        assert fake.sheet(SHEET_ID, "Data").values()[1:] == [[i, f"r{i}"] for i in range(20)]
        fake.fail_next(10, status=429)
        with pytest.raises(Exception, match="429"):
            publish_sheet(sheet_conn(endpoint, retries=2), SHEET_ID, "Data", table_of(5), max_rows=100)
    finally:
        fake.stop()


# -- the gate ------------------------------------------------------------------------------------------

def test_a_failing_fail_expectation_blocks_every_publish(tmp_path, data_home, bq, sheets):
    client, dataset = bq
    path = definition(tmp_path, {
        "table": {"schema": "analytics", "table": "revenue"},
        "export": {"format": "parquet"},
        "bigquery": {"conn_id": "bq", "dataset": dataset, "table": "revenue"},
        "sheet": {"conn_id": "sheets", "spreadsheet_id": SHEET_ID, "worksheet": "Revenue"},
    })
    run(path, D2)
    published = (bq_rows(client, f"dagspec-test.{dataset}.revenue"), sheets.sheet(SHEET_ID, "Revenue").values())
    writes = len(sheets.writes())
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("UPDATE orders SET amount = -5 WHERE order_id = (SELECT min(order_id) FROM orders "
                    "WHERE ordered_at >= '2025-03-01' AND ordered_at < '2025-03-02')")
    with pytest.raises(StepFailed, match="nothing downstream will publish"):
        run(path, D1)
    assert not (data_home / "store/analytics/revenue/batch_date=2025-03-01").exists()
    assert (bq_rows(client, f"dagspec-test.{dataset}.revenue"), sheets.sheet(SHEET_ID, "Revenue").values()) == published
    assert len(sheets.writes()) == writes
    assert warehouse_rows(data_home / "warehouse.duckdb", "SELECT DISTINCT batch_date FROM analytics.revenue") == [(D2,)]


def test_rerunning_a_date_gives_identical_outputs_in_every_target(tmp_path, data_home, bq, sheets):
    client, dataset = bq
    path = definition(tmp_path, {
        "table": {"schema": "analytics", "table": "revenue"},
        "export": {"format": "parquet"},
        "bigquery": {"conn_id": "bq", "dataset": dataset, "table": "revenue"},
        "sheet": {"conn_id": "sheets", "spreadsheet_id": SHEET_ID, "worksheet": "Revenue"},
    })
    def outputs():
        part = data_home / "store/analytics/revenue/batch_date=2025-03-01/part-00000.parquet"
        return (warehouse_rows(data_home / "warehouse.duckdb", "SELECT * FROM analytics.revenue ORDER BY channel"),
                pq.read_table(part).to_pylist(), part.read_bytes(),
                bq_rows(client, f"dagspec-test.{dataset}.revenue"), sheets.sheet(SHEET_ID, "Revenue").values())

    run(path, D1)
    first = outputs()
    assert first[0] == [(*r, D1) for r in revenue_rows(data_home, D1)]
    run(path, D1)
    assert outputs() == first


# -- assets --------------------------------------------------------------------------------------------

def test_every_output_is_an_airflow_asset(tmp_path, data_home):
    from dagspec.airflow.build import build_dag

    path = definition(tmp_path, {
        "table": {"schema": "analytics", "table": "revenue"},
        "export": {"format": "csv", "conn_id": "lake", "target": {"schema": "exports", "table": "revenue"}},
        "bigquery": {"conn_id": "bq", "project": "shop-prod", "dataset": "mart", "table": "revenue"},
        "sheet": {"conn_id": "sheets", "spreadsheet_id": SHEET_ID, "worksheet": "Daily revenue"},
    })
    dag = build_dag(load_definition(path), path)
    uris = {t.task_id: sorted(a.uri for a in t.outlets) for t in dag.tasks}
    assert uris["publish_revenue"] == sorted([
        "dagspec-warehouse://dagspec_warehouse/analytics/revenue", "dagspec-store://lake/exports/revenue",
        "bigquery://shop-prod/mart/revenue", f"gsheets://{SHEET_ID}/Daily%20revenue"])
    assert uris["daily_revenue"] == ["dagspec-warehouse://dagspec_warehouse/dagspec_work/t_publish__daily_revenue"]
    assert uris["extract_orders"] == uris["check_orders"] == []
