"""Redshift as the warehouse, tested as far as anything can run without a cluster.

Real here: the S3 side (moto's S3 server: Parquet staged for COPY, UNLOAD's output read back), every statement
the session sends (parsed with sqlglot's Redshift dialect; none of PostgreSQL's own extras), and the transaction
logic, run on a real PostgreSQL. The stand-in (tests/support/redshift_standin.py) replaces only COPY FROM S3 and
UNLOAD, which PostgreSQL does not have. Not run: a real Redshift cluster, its IAM role, its type checks in COPY.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlglot
from support.expected import expected_revenue, source_orders
from support.redshift_standin import POSTGRES_ONLY, statements
from support.warehouse_fixtures import pg_rows

from dagspec.connections import ConnectionInfo, env_resolver
from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.store import Store
from dagspec.warehouse import open_warehouse
from dagspec.warehouse.redshift import inline

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2025, 3, 1)


def run(day: date, name: str = "orders_daily.json"):
    pipeline = load_definition(ROOT / "dags" / "definitions" / name)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def test_orders_pipeline_on_redshift_gives_exact_values_through_s3_and_reruns_identically(data_home, redshift_wh):
    db = redshift_wh["db"]
    run(DAY)
    assert pg_rows(db, "SELECT * FROM analytics.daily_revenue ORDER BY channel") == expected_revenue(
        data_home / "source.db", DAY)
    orders = pg_rows(db, "SELECT order_id, amount FROM analytics.orders ORDER BY order_id")
    assert orders == [(o[0], o[5]) for o in source_orders(data_home / "source.db", DAY)]
    # The export came out through UNLOAD (Parquet in S3, read back) and equals the table.
    part = Store(data_home / "store").partition("analytics", "daily_revenue", DAY)
    exported = sorted(tuple(r.values()) for f in part.files for r in pq.read_table(f).to_pylist())
    assert exported == [r[:-1] for r in expected_revenue(data_home / "source.db", DAY)]
    assert redshift_wh["standin"].copies and redshift_wh["standin"].unloads
    before = pg_rows(db, "SELECT * FROM analytics.orders ORDER BY order_id")
    run(DAY)
    assert pg_rows(db, "SELECT * FROM analytics.orders ORDER BY order_id") == before
    # Nothing is left in the staging prefix.
    listed = redshift_wh["s3"].client().list_objects_v2(Bucket=redshift_wh["bucket"]).get("Contents", [])
    assert [o["Key"] for o in listed if not o["Key"].endswith("/")] == []


def test_every_statement_is_redshift_sql_and_none_is_postgresql_only(data_home, redshift_wh):
    run(DAY)
    sent = statements(redshift_wh)
    assert any(s.startswith("COPY ") and "FORMAT AS PARQUET" in s for s in sent)
    assert any(s.startswith("UNLOAD (") for s in sent)
    assert any(s.startswith("ANALYZE ") for s in sent)
    for sql in sent:
        assert not any(word in sql for word in POSTGRES_ONLY), sql
        sqlglot.parse_one(sql.replace("%(batch_date)s", "'2025-03-01'").replace("%(s)s", "'x'").replace(
            "%(t)s", "'y'"), read="redshift")


def test_a_merge_is_delete_matching_then_insert_in_one_transaction(redshift_wh):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        s.merge_batch("mart", "customers", DAY, "SELECT 1 AS id, 'a' AS name UNION ALL SELECT 2, 'b'", {}, ["id"])
        s.merge_batch("mart", "customers", date(2025, 3, 2), "SELECT 2 AS id, 'B' AS name UNION ALL SELECT 3, 'c'",
                      {}, ["id"])
        with pytest.raises(ValueError, match="duplicate row"):
            s.merge_batch("mart", "customers", DAY, "SELECT 1 AS id, 'x' AS name UNION ALL SELECT 1, 'y'", {}, ["id"])
    assert pg_rows(redshift_wh["db"], "SELECT id, name, batch_date FROM mart.customers ORDER BY id") == [
        (1, "a", DAY), (2, "B", date(2025, 3, 2)), (3, "c", date(2025, 3, 2))]
    assert any(s.startswith('DELETE FROM "mart"."customers" USING') for s in statements(redshift_wh))


def test_a_table_is_replaced_by_drop_and_rename_in_one_transaction(redshift_wh):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        assert s.replace_table("mart", "latest", DAY, "SELECT 1 AS n", {}) == 1
        assert s.replace_table("mart", "latest", DAY, "SELECT 2 AS n UNION ALL SELECT 3", {}) == 2
    assert pg_rows(redshift_wh["db"], "SELECT n FROM mart.latest ORDER BY n") == [(2,), (3,)]


def test_staging_keys_never_appear_in_what_the_session_records(redshift_wh):
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    secret = redshift_wh["s3"].secret_key
    import pyarrow as pa

    with wh.session() as s:
        s.expose("__ref_t", pa.table({"a": [1]}))
        recorded = " ".join(s.statements)
    assert "SECRET_ACCESS_KEY '***'" in recorded and secret not in recorded


def test_a_redshift_connection_never_reaches_postgresql_code_and_needs_its_staging():
    info = ConnectionInfo("wh", "redshift", "cluster.example.com", None, "u", "p", "dev")
    with pytest.raises(ValueError, match=r"needs extra.staging_conn_id: an 'aws' connection"):
        open_warehouse(info)


def test_unload_carries_only_values_dagspec_computed():
    assert inline("SELECT * FROM t WHERE d = %(batch_date)s AND n > %(n)s", {"batch_date": DAY, "n": 3}) == \
        "SELECT * FROM t WHERE d = DATE '2025-03-01' AND n > 3"
    with pytest.raises(ValueError, match="can only carry dates, times and numbers"):
        inline("SELECT %(x)s", {"x": "'); DROP TABLE t; --"})


def test_a_history_input_reads_published_batches_through_a_derived_table(data_home, redshift_wh, tmp_path):
    from support.day_runs import run_day, write_definition
    from support.history_steps import counting_history

    path = write_definition(tmp_path, "rs_history", counting_history(days=1))
    before = date(2025, 2, 28)
    for day in (before, DAY, before):
        run_day(path, day)
    got = pg_rows(redshift_wh["db"], "SELECT batch_date, orders_seen FROM dagspec_work.rs_history__seen ORDER BY 1")
    source = data_home / "source.db"
    # 2025-02-27 was never published; the re-run of 02-28 does not see 03-01's batch.
    assert got == [(before, len(source_orders(source, before))),
                   (DAY, len(source_orders(source, before)) + len(source_orders(source, DAY)))]
    sent = statements(redshift_wh)
    assert any('FROM (SELECT * FROM "mart"."orders" WHERE batch_date >=' in s for s in sent)
    for sql in sent:
        assert not any(word in sql for word in POSTGRES_ONLY), sql


def test_no_savepoint_reaches_redshift_on_the_psycopg_driver(data_home, redshift_wh, monkeypatch, tmp_path):
    """Redshift has no SAVEPOINT. psycopg sends one for a transaction opened inside another, and a batch's replace,
    its merge and its column probe each open one: libpq's own trace of the wire shows what the server received."""
    from contextlib import contextmanager

    from dagspec.warehouse import redshift

    trace = (tmp_path / "libpq.trace").open("w")
    opened = redshift.RedshiftWarehouse.session

    @contextmanager
    def traced(self):
        with opened(self) as session:
            session.con.pgconn.trace(trace.fileno())
            try:
                yield session
            finally:
                session.con.pgconn.untrace()  # flushes libpq's buffer before the connection closes

    monkeypatch.setattr(redshift.RedshiftWarehouse, "session", traced)
    run(DAY)
    wh = open_warehouse(env_resolver("dagspec_warehouse"))
    with wh.session() as s:
        s.merge_batch("mart", "customers", DAY, "SELECT 1 AS id", {}, ["id"])
        s.replace_table("mart", "latest", DAY, "SELECT 1 AS n", {})
    trace.close()
    sent = (tmp_path / "libpq.trace").read_text()
    assert "Query" in sent and "BEGIN" in sent and "COPY" not in sent.split("Query")[0]
    assert "SAVEPOINT" not in sent.upper()
    assert pg_rows(redshift_wh["db"], "SELECT count(*) FROM analytics.daily_revenue") == [(
        len(expected_revenue(data_home / "source.db", DAY)),)]
