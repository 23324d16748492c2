"""Transform materialisations on real warehouses (DuckDB and PostgreSQL): table, incremental, merge, view."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from support.expected import warehouse_rows
from support.warehouse_fixtures import pg_rows

from dagspec.runner import run_pipeline, window_of_day
from dagspec.spec import load_definition
from dagspec.stages import StepFailed

ROOT = Path(__file__).resolve().parents[2]
D1, D2 = date(2025, 3, 1), date(2025, 3, 2)


def pipeline_with(tmp_path: Path, monkeypatch, sql: dict[str, str], steps: list[dict], params=None):
    sql_dir = tmp_path / "sql"
    for name, text in sql.items():
        (sql_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (sql_dir / name).write_text(text)
    monkeypatch.setenv("DAGSPEC_SQL_DIR", str(sql_dir))
    definition = {
        "dag_id": "t_transform", "start_date": "2025-01-01", "params": params or {},
        "steps": [{"id": "extract_orders", "kind": "extract",
                   "source": {"table": "orders", "incremental_column": "ordered_at"},
                   "target": {"schema": "raw", "table": "orders"}}, *steps],
    }
    path = tmp_path / "t_transform.json"
    path.write_text(json.dumps(definition))
    return path


def run(path: Path, day: date):
    pipeline = load_definition(path)
    return run_pipeline(pipeline, window_of_day(pipeline, day))


def source(data_home: Path, sql: str, params=()):
    with sqlite3.connect(data_home / "source.db") as con:
        return con.execute(sql, params).fetchall()


TABLE_SQL = """SELECT channel, count(*) AS orders,
  CASE WHEN {{ params.broken }} THEN CAST(channel AS INTEGER) ELSE 0 END AS boom
FROM {{ ref('extract_orders') }} GROUP BY channel"""


def test_table_is_replaced_whole_and_a_failure_leaves_the_old_one(tmp_path, monkeypatch, data_home, rows_of):
    steps = [{"id": "by_channel", "kind": "transform", "sql": "by_channel.sql", "inputs": ["extract_orders"],
              "materialization": "table", "target": {"schema": "mart", "table": "by_channel"}}]
    path = pipeline_with(tmp_path, monkeypatch, {"by_channel.sql": TABLE_SQL}, steps, {"broken": "false"})
    run(path, D1)
    run(path, D2)
    want = source(data_home, "SELECT channel, count(*) FROM orders WHERE ordered_at >= '2025-03-02' AND "
                             "ordered_at < '2025-03-03' GROUP BY channel ORDER BY channel")
    assert rows_of("SELECT channel, orders, batch_date FROM mart.by_channel ORDER BY channel") == [
        (c, n, D2) for c, n in want]

    broken = pipeline_with(tmp_path, monkeypatch, {"by_channel.sql": TABLE_SQL}, steps, {"broken": "true"})
    with pytest.raises(StepFailed, match="mart.by_channel is unchanged"):
        run(broken, D1)
    assert rows_of("SELECT channel, orders, batch_date FROM mart.by_channel ORDER BY channel") == [
        (c, n, D2) for c, n in want]


MERGE_SQL = """SELECT customer_id, max(order_id) AS last_order_id, count(*) AS orders
FROM {{ ref('extract_orders') }} GROUP BY customer_id"""


def test_incremental_merge_on_a_key_upserts_and_reruns_identically(tmp_path, monkeypatch, data_home, rows_of):
    steps = [{"id": "last_order", "kind": "transform", "sql": "last_order.sql", "inputs": ["extract_orders"],
              "unique_key": ["customer_id"], "target": {"schema": "mart", "table": "last_order"}}]
    path = pipeline_with(tmp_path, monkeypatch, {"last_order.sql": MERGE_SQL}, steps)
    run(path, D1)
    run(path, D2)
    by_day = {d: dict((c, (o, n)) for c, o, n in source(
        data_home, "SELECT customer_id, max(order_id), count(*) FROM orders WHERE ordered_at >= ? AND ordered_at < ? "
                   "GROUP BY customer_id", (f"{d} 00:00:00", f"{date.fromordinal(d.toordinal() + 1)} 00:00:00")))
        for d in (D1, D2)}
    want = {c: (*v, D1) for c, v in by_day[D1].items()} | {c: (*v, D2) for c, v in by_day[D2].items()}
    sql = "SELECT customer_id, last_order_id, orders, batch_date FROM mart.last_order ORDER BY customer_id"
    got = rows_of(sql)
    assert got == [(c, *want[c]) for c in sorted(want)]
    assert len(set(by_day[D1]) & set(by_day[D2])) > 0  # the merge really updated rows
    run(path, D2)
    assert rows_of(sql) == got


def test_view_over_a_transform_table(tmp_path, monkeypatch, data_home, rows_of):
    steps = [
        {"id": "rev", "kind": "transform", "sql": "rev.sql", "inputs": ["extract_orders"],
         "target": {"schema": "mart", "table": "rev"}},
        {"id": "rev_total", "kind": "transform", "sql": "rev_total.sql", "inputs": ["rev"],
         "materialization": "view", "target": {"schema": "mart", "table": "rev_total"}},
    ]
    sql = {"rev.sql": "SELECT channel, count(*) AS orders FROM {{ ref('extract_orders') }} GROUP BY channel",
           "rev_total.sql": "SELECT channel, sum(orders) AS orders, count(*) AS days FROM {{ ref('rev') }} "
                            "GROUP BY channel"}
    path = pipeline_with(tmp_path, monkeypatch, sql, steps)
    run(path, D1)
    run(path, D2)
    want = source(data_home, "SELECT channel, count(*) FROM orders WHERE ordered_at >= '2025-03-01' AND "
                             "ordered_at < '2025-03-03' GROUP BY channel ORDER BY channel")
    assert [(c, int(n), d) for c, n, d in rows_of("SELECT * FROM mart.rev_total ORDER BY channel")] == [
        (c, n, 2) for c, n in want]


def test_a_table_with_a_view_over_it_is_replaced_and_the_view_follows(tmp_path, monkeypatch, data_home, rows_of):
    steps = [
        {"id": "by_channel", "kind": "transform", "sql": "by_channel.sql", "inputs": ["extract_orders"],
         "materialization": "table", "target": {"schema": "mart", "table": "by_channel"}},
        {"id": "busiest", "kind": "transform", "sql": "busiest.sql", "inputs": ["by_channel"],
         "materialization": "view", "target": {"schema": "mart", "table": "busiest"}},
    ]
    sql = {"by_channel.sql": "SELECT channel, count(*) AS orders FROM {{ ref('extract_orders') }} GROUP BY channel",
           "busiest.sql": "SELECT channel, orders, batch_date FROM {{ ref('by_channel') }} ORDER BY orders DESC LIMIT 1"}
    path = pipeline_with(tmp_path, monkeypatch, sql, steps)
    run(path, D1)
    run(path, D2)  # the table is rebuilt while the view depends on it
    (channel, n), = source(data_home, "SELECT channel, count(*) AS n FROM orders WHERE ordered_at >= '2025-03-02' "
                                      "AND ordered_at < '2025-03-03' GROUP BY channel ORDER BY n DESC LIMIT 1")
    assert rows_of("SELECT channel, orders, batch_date FROM mart.busiest") == [(channel, n, D2)]

    changed = pipeline_with(tmp_path, monkeypatch, {**sql, "by_channel.sql": sql["by_channel.sql"].replace(
        "count(*) AS orders", "count(*) AS orders, 1 AS extra")}, steps)
    try:
        run(changed, D1)
    except StepFailed as exc:  # PostgreSQL: the view holds the table; its columns cannot change under it
        assert "view(s)" in str(exc) and "busiest" in str(exc)
        assert rows_of("SELECT channel, orders, batch_date FROM mart.busiest") == [(channel, n, D2)]
    else:  # DuckDB binds a view by name when it is queried: it reads the new table
        assert rows_of("SELECT batch_date FROM mart.busiest") == [(D1,)]
        assert rows_of("SELECT count(*) FROM information_schema.tables WHERE table_name = 'by_channel' "
                       "AND table_catalog = current_database()")[0][0] == 1


def test_a_view_refuses_staged_parquet_and_parameters(tmp_path, monkeypatch, data_home):
    steps = [{"id": "v", "kind": "transform", "sql": "v.sql", "inputs": ["extract_orders"],
              "materialization": "view"}]
    path = pipeline_with(tmp_path, monkeypatch, {"v.sql": "SELECT * FROM {{ ref('extract_orders') }}"}, steps)
    with pytest.raises(StepFailed, match="a view can only read warehouse tables"):
        run(path, D1)


def test_redshift_file_gives_the_same_result_on_duckdb_and_postgres(data_home, monkeypatch, request):
    path = ROOT / "dags" / "definitions" / "customers_snapshot.json"
    run(path, D1)
    sql = "SELECT segment, country, customers, avg_tenure_days, batch_date FROM analytics.customer_segments " \
          "ORDER BY segment, country"
    on_duckdb = warehouse_rows(data_home / "warehouse.duckdb", sql)
    db = request.getfixturevalue("pg_db")
    run(path, D1)
    on_postgres = pg_rows(db, sql)
    assert len(on_duckdb) > 10
    assert [(s, c, n, float(a), d) for s, c, n, a, d in on_postgres] == [
        (s, c, n, float(a), d) for s, c, n, a, d in on_duckdb]


MACROS_SQL = """SELECT '{{ ds }}' AS ds, '{{ macros.ds_add(ds, -7) }}' AS week_ago,
  '{{ macros.ds_format(ds, "%Y-%m-%d", "%d/%m/%Y") }}' AS ds_eu, '{{ ds_nodash }}' AS ds_nodash,
  '{{ data_interval_end.strftime("%Y-%m-%d") }}' AS end_day,
  '{{ (data_interval_start + macros.timedelta(hours=6)).isoformat() }}' AS six_am,
  '{{ prev_ds }}' AS prev_ds, '{{ next_ds }}' AS next_ds, count(*) AS orders
FROM {{ ref('extract_orders') }} WHERE ordered_at >= :from_date AND ordered_at < :to_date"""


def test_sql_files_get_airflow_template_variables_and_macros(tmp_path, monkeypatch, data_home, rows_of):
    steps = [{"id": "stamp", "kind": "transform", "sql": "stamp.sql", "inputs": ["extract_orders"],
              "target": {"schema": "mart", "table": "stamp"}}]
    run(pipeline_with(tmp_path, monkeypatch, {"stamp.sql": MACROS_SQL}, steps), D1)
    (n,), = source(data_home, "SELECT count(*) FROM orders WHERE ordered_at >= '2025-03-01' AND "
                              "ordered_at < '2025-03-02'")
    assert rows_of("SELECT ds, week_ago, ds_eu, ds_nodash, end_day, six_am, prev_ds, next_ds, orders "
                   "FROM mart.stamp") == [("2025-03-01", "2025-02-22", "01/03/2025", "20250301", "2025-03-02",
                                           "2025-03-01T06:00:00+00:00", "2025-02-28", "2025-03-02", n)]


def test_an_inline_query_runs_like_a_sql_file(tmp_path, monkeypatch, data_home):
    """A drop that carries its own SQL: the same Jinja, ref() and window as a file, no file deployed."""
    query = ("SELECT channel, count(*) AS orders FROM {{ ref('extract_orders') }} "
             "WHERE ordered_at >= :from_date AND ordered_at < :to_date AND '{{ ds }}' = '{{ batch_date }}' "
             "GROUP BY channel")
    target = {"schema": "analytics", "table": "inline_orders"}
    path = pipeline_with(tmp_path, monkeypatch, {}, [
        {"id": "by_channel", "kind": "transform", "query": query, "inputs": ["extract_orders"], "target": target}])
    run(path, D1)
    want = source(data_home, "SELECT channel, count(*) FROM orders WHERE substr(ordered_at, 1, 10) = ? "
                  "GROUP BY channel ORDER BY channel", (D1.isoformat(),))
    got = warehouse_rows(data_home / "warehouse.duckdb",
                         "SELECT channel, orders FROM analytics.inline_orders ORDER BY channel")
    assert got == want and sum(n for _, n in want) > 100


def test_a_transform_needs_exactly_one_of_sql_and_query(tmp_path, monkeypatch, data_home):
    from dagspec.spec.errors import DefinitionError

    for step in ({"id": "t", "kind": "transform", "inputs": ["extract_orders"]},
                 {"id": "t", "kind": "transform", "sql": "a.sql", "query": "SELECT 1", "inputs": ["extract_orders"]}):
        path = pipeline_with(tmp_path, monkeypatch, {"a.sql": "SELECT 1"}, [step])
        with pytest.raises(DefinitionError) as err:
            load_definition(path)
        assert "give exactly one of 'sql' (a SQL file) or 'query' (the SQL inline)" in str(err.value)


def test_a_warehouse_error_keeps_the_engines_whole_message(tmp_path, monkeypatch, data_home, rows_of, caplog):
    steps = [{"id": "by_channel", "kind": "transform", "sql": "by_channel.sql", "inputs": ["extract_orders"],
              "materialization": "table", "target": {"schema": "mart", "table": "by_channel"}}]
    typo = "SELECT chanel, count(*) AS orders\nFROM {{ ref('extract_orders') }} GROUP BY chanel"
    path = pipeline_with(tmp_path, monkeypatch, {"by_channel.sql": typo}, steps)
    caplog.set_level("DEBUG", logger="dagspec")
    with pytest.raises(StepFailed) as failed:
        run(path, D1)
    message = str(failed.value)
    # Both engines point at the line and name the column; the first line alone had neither pointer.
    assert "chanel" in message and "LINE" in message and "\n" in message
    assert any("SQL sent to" in r.getMessage() and "chanel" in r.getMessage() for r in caplog.records)
