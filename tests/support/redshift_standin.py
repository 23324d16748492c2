"""The one stand-in in the Redshift tests: COPY ... FROM 's3://' and UNLOAD, which PostgreSQL does not have.

Every other statement the Redshift session sends runs on PostgreSQL as written. These two are recorded
exactly as Redshift would receive them (the tests parse them with sqlglot's Redshift dialect), and their
effect is done by hand: the Parquet the session staged in the S3 emulator is loaded with psycopg's COPY
FROM STDIN, and an UNLOAD's query runs on PostgreSQL and its rows are written as Parquet to the S3 prefix.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dagspec.warehouse.postgres import PostgresSession
from dagspec.warehouse.redshift import RedshiftSession, copy_sql, unload_sql


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
