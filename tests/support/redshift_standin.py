"""The one stand-in in the Redshift tests: COPY ... FROM 's3://' and UNLOAD, which PostgreSQL does not have.

Every other statement the Redshift session sends runs on PostgreSQL as written. These two are recorded
exactly as Redshift would receive them (the tests parse them with sqlglot's Redshift dialect), and their
effect is done by hand: the Parquet the session staged in the S3 emulator is loaded with psycopg's COPY
FROM STDIN, and an UNLOAD's query runs on PostgreSQL and its rows are written as Parquet to the S3 prefix.
"""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dagspec.warehouse import redshift
from dagspec.warehouse.postgres import PostgresSession
from dagspec.warehouse.redshift import RedshiftSession, copy_sql, unload_sql

# What a statement sent to Redshift must never hold: PostgreSQL's own extras, which Redshift refuses.
POSTGRES_ONLY = ("FROM STDIN", "ON COMMIT", "TEMP VIEW", "regclass", "pg_my_temp_schema", "MERGE INTO", "pg_depend",
                 "CREATE INDEX")


class PostgresStandIn:
    def __init__(self):
        self.copies: list[str] = []
        self.unloads: list[str] = []

    def copy_in(self, session: RedshiftSession, target: str, uri: str) -> None:
        session.record(copy_sql(session.staging, target, uri))
        self.copies.append(uri)
        prefix = uri.removeprefix("s3://").rstrip("/")
        options = pacsv.WriteOptions(include_header=False)
        with session.con.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy:
            for batch in session.staging.read(prefix):
                buf = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
                copy.write(buf.getvalue())

    def unload(self, session: RedshiftSession, select_sql: str, uri: str) -> None:
        session.record(unload_sql(session.staging, select_sql, uri))
        self.unloads.append(uri)
        reader = PostgresSession(session.con).arrow(select_sql, {})
        prefix = uri.removeprefix("s3://").rstrip("/")
        with session.staging.location.fs.open_output_stream(f"{prefix}/0000_part_00.parquet") as out, \
                pq.ParquetWriter(out, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)


@pytest.fixture()
def redshift_wh(pg_db, s3_server, monkeypatch):
    """dagspec_warehouse is a `redshift` connection (PostgreSQL answering), staging through the S3 emulator."""
    bucket = s3_server.make_bucket("rs-staging")
    monkeypatch.setenv("AIRFLOW_CONN_RS_STAGING", s3_server.connection_json(f"s3://{bucket}/load"))
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_WAREHOUSE", json.dumps({
        "conn_type": "redshift", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": pg_db,
        "extra": {"staging_conn_id": "rs_staging"}}))
    standin = PostgresStandIn()
    sessions: list[RedshiftSession] = []
    real_session = redshift.RedshiftSession

    def recorded(*args, **kwargs):
        sessions.append(real_session(*args, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(redshift, "RedshiftLoad", lambda: standin)
    monkeypatch.setattr(redshift, "RedshiftSession", recorded)
    yield {"db": pg_db, "standin": standin, "sessions": sessions, "s3": s3_server, "bucket": bucket}


def statements(wh) -> list[str]:
    return [s for session in wh["sessions"] for s in session.statements]


