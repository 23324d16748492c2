"""Benchmark data for bench/extract_bench.py: TPC-H lineitem from DuckDB's tpch extension, loaded into
the local PostgreSQL (database ds_extract_bench) and MariaDB (database ds_extract_bench).

Tables: lineitem (sf=1, 6,001,215 rows) and lineitem_x2 (the same rows twice) in PostgreSQL;
lineitem (sf=MYSQL_SF) and lineitem_x2 in MariaDB. Loading is skipped when the row counts are right.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import duckdb

PG = dict(host=os.environ.get("DS_BENCH_PG_HOST", "127.0.0.1"), port=5432, user="postgres", dbname="ds_extract_bench")
MY = dict(host=os.environ.get("DS_BENCH_MY_HOST", "127.0.0.1"), port=3306, user="root", database="ds_extract_bench")
PG_SF = 1
MYSQL_SF = 0.2

LINEITEM_DDL = """(
  l_orderkey bigint not null, l_partkey bigint not null, l_suppkey bigint not null, l_linenumber integer not null,
  l_quantity decimal(15,2) not null, l_extendedprice decimal(15,2) not null, l_discount decimal(15,2) not null,
  l_tax decimal(15,2) not null, l_returnflag char(1) not null, l_linestatus char(1) not null,
  l_shipdate date not null, l_commitdate date not null, l_receiptdate date not null,
  l_shipinstruct varchar(25) not null, l_shipmode varchar(10) not null, l_comment varchar(44) not null)"""


def extension(name: str) -> str:
    import importlib

    mod = importlib.import_module(f"duckdb_extension_{name}")
    return str(next(Path(mod.__path__[0]).rglob("*.duckdb_extension")))


def tpch_csv(sf: float, folder: Path) -> tuple[Path, int, str]:
    """lineitem at scale `sf` as CSV, with its row count and sum(l_extendedprice)."""
    con = duckdb.connect()
    con.execute(f"LOAD '{extension('tpch')}'")
    con.execute(f"CALL dbgen(sf={sf})")
    path = folder / f"lineitem_{sf}.csv"
    con.execute(f"COPY lineitem TO '{path}' (HEADER false, DELIMITER '|')")
    rows, total = con.execute("SELECT count(*), sum(l_extendedprice)::VARCHAR FROM lineitem").fetchone()
    con.close()
    return path, rows, total


def pg_count(table: str) -> int | None:
    import psycopg

    try:
        with psycopg.connect(**PG, autocommit=True) as c:
            return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except psycopg.Error:
        return None


def load_postgres(folder: Path) -> None:
    import psycopg

    with psycopg.connect(**{**PG, "dbname": "postgres"}, autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG["dbname"]]).fetchone():
            c.execute(f"CREATE DATABASE {PG['dbname']}")
    if pg_count("lineitem") == 6_001_215 and pg_count("lineitem_x2") == 12_002_430:
        return
    csv, rows, _ = tpch_csv(PG_SF, folder)
    with psycopg.connect(**PG, autocommit=True) as c:
        c.execute("DROP TABLE IF EXISTS lineitem")
        c.execute("DROP TABLE IF EXISTS lineitem_x2")
        c.execute(f"CREATE TABLE lineitem {LINEITEM_DDL}")
        with c.cursor().copy("COPY lineitem FROM STDIN (FORMAT csv, DELIMITER '|')") as cp, open(csv, "rb") as fh:
            while block := fh.read(1 << 20):
                cp.write(block)
        c.execute(f"CREATE TABLE lineitem_x2 {LINEITEM_DDL}")
        c.execute("INSERT INTO lineitem_x2 SELECT * FROM lineitem UNION ALL SELECT * FROM lineitem")
        c.execute("VACUUM ANALYZE lineitem")
        c.execute("VACUUM ANALYZE lineitem_x2")
    csv.unlink()
    print(f"postgres: loaded lineitem ({rows} rows) and lineitem_x2", file=sys.stderr)


def my_count(table: str) -> int | None:
    import pymysql

    try:
        c = pymysql.connect(**MY)
    except pymysql.Error:
        return None
    try:
        with c.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return cur.fetchone()[0]
    except pymysql.Error:
        return None
    finally:
        c.close()


def load_mysql(folder: Path) -> int:
    import pymysql

    csv, rows, _ = None, None, None
    if my_count("lineitem") and my_count("lineitem_x2") == 2 * (my_count("lineitem") or 0):
        return my_count("lineitem")
    csv, rows, _ = tpch_csv(MYSQL_SF, folder)
    c = pymysql.connect(**{k: v for k, v in MY.items() if k != "database"}, local_infile=True, autocommit=True)
    with c.cursor() as cur:
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {MY['database']}")
        cur.execute(f"USE {MY['database']}")
        cur.execute("DROP TABLE IF EXISTS lineitem")
        cur.execute("DROP TABLE IF EXISTS lineitem_x2")
        cur.execute(f"CREATE TABLE lineitem {LINEITEM_DDL}")
        cur.execute(f"LOAD DATA LOCAL INFILE '{csv}' INTO TABLE lineitem FIELDS TERMINATED BY '|'")
        cur.execute(f"CREATE TABLE lineitem_x2 {LINEITEM_DDL}")
        cur.execute("INSERT INTO lineitem_x2 SELECT * FROM lineitem UNION ALL SELECT * FROM lineitem")
    c.close()
    csv.unlink()
    print(f"mariadb: loaded lineitem ({rows} rows) and lineitem_x2", file=sys.stderr)
    return rows


def expected(sf: float) -> tuple[int, str]:
    con = duckdb.connect()
    con.execute(f"LOAD '{extension('tpch')}'")
    con.execute(f"CALL dbgen(sf={sf})")
    return con.execute("SELECT count(*), sum(l_extendedprice)::VARCHAR FROM lineitem").fetchone()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ds_extract_bench_") as tmp:
        load_postgres(Path(tmp))
        load_mysql(Path(tmp))


if __name__ == "__main__":
    main()
