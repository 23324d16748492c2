"""History inputs: a day's lineitem joined to the orders published on earlier runs, in DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta

import pytest
from support.day_runs import run_day, write_definition

from dagspec.errors import StepFailed
from dagspec.plan import plan_of
from dagspec.spec import load_definition

ORDERS_DAY = date(2025, 1, 10)
LINES_DAY = ORDERS_DAY + timedelta(days=100)
OLD_DAY = LINES_DAY - timedelta(days=130)  # published, but outside the 121-day lookback of LINES_DAY
JOIN = ("SELECT l.l_orderkey, l.l_linenumber, l.l_quantity, o.o_custkey, o.batch_date AS ordered_on "
        "FROM {{ ref('extract_lines') }} AS l JOIN {{ history('publish_orders') }} AS o ON o.o_orderkey = l.l_orderkey")


@pytest.fixture()
def tpch(data_home):
    """orders on three days and one day's lineitem, in the sample source database."""
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("CREATE TABLE tpch_orders (o_orderkey INTEGER NOT NULL, o_custkey INTEGER, o_orderdate DATETIME)")
        con.execute("CREATE TABLE tpch_lineitem (l_orderkey INTEGER NOT NULL, l_linenumber INTEGER, "
                    "l_quantity INTEGER, l_shipdate DATETIME)")
        con.executemany("INSERT INTO tpch_orders VALUES (?, ?, ?)", [
            (1, 11, f"{ORDERS_DAY} 09:00:00"), (2, 12, f"{ORDERS_DAY} 17:30:00"),
            (3, 13, f"{LINES_DAY} 08:00:00"), (4, 14, f"{OLD_DAY} 12:00:00")])
        con.executemany("INSERT INTO tpch_lineitem VALUES (?, ?, ?, ?)", [
            (1, 1, 5, f"{LINES_DAY} 10:00:00"), (1, 2, 7, f"{LINES_DAY} 11:00:00"), (2, 1, 3, f"{LINES_DAY} 12:00:00"),
            (3, 1, 1, f"{LINES_DAY} 13:00:00"), (4, 1, 9, f"{LINES_DAY} 14:00:00"), (5, 1, 2, f"{LINES_DAY} 15:00:00")])
    return data_home


def steps(history: dict | None = None, query: str = JOIN) -> list[dict]:
    # The transform is listed before the publish it reads: the plan, not the listing, puts the publish first.
    return [
        {"id": "extract_orders", "kind": "extract",
         "source": {"table": "tpch_orders", "incremental_column": "o_orderdate"},
         "target": {"schema": "raw", "table": "tpch_orders"}},
        {"id": "extract_lines", "kind": "extract",
         "source": {"table": "tpch_lineitem", "incremental_column": "l_shipdate"},
         "target": {"schema": "raw", "table": "tpch_lineitem"}},
        {"id": "lines_with_orders", "kind": "transform", "inputs": ["extract_lines"], "query": query,
         "history": [history or {"step": "publish_orders", "days": 121}],
         "target": {"schema": "mart", "table": "lines_with_orders"}},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders", "after": ["extract_orders"],
         "table": {"schema": "mart", "table": "orders"}},
    ]


WANT = [(1, 1, 5, 11, ORDERS_DAY), (1, 2, 7, 11, ORDERS_DAY), (2, 1, 3, 12, ORDERS_DAY), (3, 1, 1, 13, LINES_DAY)]
JOINED = "SELECT l_orderkey, l_linenumber, l_quantity, o_custkey, ordered_on FROM mart.lines_with_orders " \
         "WHERE batch_date = DATE '2025-04-20' ORDER BY 1, 2"


def test_a_days_lines_join_orders_published_on_earlier_runs_exactly_and_rerun_identically(tpch, tmp_path, rows_of,
                                                                                         caplog):
    path = write_definition(tmp_path, "t_history", steps(), start_date="2024-12-01")
    order = plan_of(load_definition(path)).order
    assert order.index("publish_orders") < order.index("lines_with_orders")
    for day in (OLD_DAY, ORDERS_DAY, LINES_DAY):
        run_day(path, day)
    # The first run's history starts at its own day, not 121 days (or start_date) before: said, not silent.
    assert "history publish_orders holds batches only from 2024-12-11, not from 2024-12-01" in caplog.text
    assert rows_of(JOINED) == WANT  # order 4 is published but 130 days old; line 5 has no order
    assert rows_of("SELECT batch_date, count(*) FROM mart.orders GROUP BY 1 ORDER BY 1") == [
        (OLD_DAY, 1), (ORDERS_DAY, 2), (LINES_DAY, 1)]
    run_day(path, LINES_DAY)
    assert rows_of(JOINED) == WANT
    assert rows_of("SELECT count(*) FROM mart.lines_with_orders") == [(4,)]


def test_a_rerun_of_an_old_day_never_sees_batches_published_after_it(tpch, tmp_path, rows_of):
    query = ("SELECT count(*) AS orders_seen, max(batch_date) AS newest FROM {{ history('publish_orders') }} AS o")
    path = write_definition(tmp_path, "t_history_asof", steps({"step": "publish_orders"}, query),
                            start_date="2024-12-01")
    for day in (OLD_DAY, ORDERS_DAY, LINES_DAY, ORDERS_DAY):
        run_day(path, day)
    assert rows_of("SELECT batch_date, orders_seen, newest FROM mart.lines_with_orders ORDER BY 1") == [
        (OLD_DAY, 1, OLD_DAY), (ORDERS_DAY, 3, ORDERS_DAY), (LINES_DAY, 4, LINES_DAY)]


def test_an_empty_history_fails_the_run_unless_allowed(tpch, tmp_path, rows_of):
    # 2025-02-01 has no orders: with days 0 the history holds nothing, and the join would publish 0 rows.
    path = write_definition(tmp_path, "t_history_empty", steps({"step": "publish_orders", "days": 0}))
    with pytest.raises(StepFailed, match=r"mart.orders holds no rows with batch_date 2025-02-01..2025-02-01.*"
                                         r"dagspec backfill t_history_empty.*allow_empty"):
        run_day(path, date(2025, 2, 1))
    assert rows_of("SELECT count(*) FROM information_schema.tables WHERE table_name = 'lines_with_orders'") == [(0,)]
    path = write_definition(tmp_path, "t_history_empty",
                            steps({"step": "publish_orders", "days": 0, "allow_empty": True}))
    run_day(path, date(2025, 2, 1))
    assert rows_of("SELECT count(*) FROM mart.lines_with_orders") == [(0,)]


def test_another_definitions_table_that_does_not_exist_yet_fails_with_the_fix(tpch, tmp_path, rows_of):
    query = JOIN.replace("history('publish_orders')", "history('sales.orders')")
    path = write_definition(tmp_path, "t_history_cross", steps({"table": {"schema": "sales", "table": "orders"},
                                                                "allow_empty": True}, query))
    with pytest.raises(StepFailed, match=r"history 'sales.orders': warehouse table sales.orders does not exist yet.*"
                                         r"run the definition that publishes it first"):
        run_day(path, LINES_DAY)


def test_dagspec_test_gives_rows_for_a_history_input_cut_to_its_days(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dagspec.cli import app

    folder = tmp_path / "definitions"
    (folder / "tests").mkdir(parents=True)
    write_definition(folder, "t_history_unit", steps(), start_date="2024-12-01")
    orders = {"columns": {"batch_date": "date"}, "rows": [
        {"o_orderkey": 1, "o_custkey": 11, "batch_date": str(ORDERS_DAY)},
        {"o_orderkey": 4, "o_custkey": 14, "batch_date": str(OLD_DAY)},  # before the 121 days: cut
        {"o_orderkey": 6, "o_custkey": 16, "batch_date": str(LINES_DAY + timedelta(days=1))}]}  # after: cut
    lines = {"rows": [{"l_orderkey": k, "l_linenumber": 1, "l_quantity": 2} for k in (1, 4, 6)]}
    expect = [{"l_orderkey": 1, "l_linenumber": 1, "l_quantity": 2, "o_custkey": 11, "ordered_on": str(ORDERS_DAY)}]
    (folder / "tests" / "t_history_unit.json").write_text(json.dumps({"tests": [{
        "name": "lines join the orders of the last 121 days", "step": "lines_with_orders",
        "batch_date": str(LINES_DAY), "given": {"extract_lines": lines, "publish_orders": orders},
        "expect": {"rows": expect, "columns": {"ordered_on": "date"}}}]}))
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(folder))
    result = CliRunner().invoke(app, ["test", "t_history_unit"])
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output


def test_a_history_name_the_step_does_not_list_is_refused_at_validate(tmp_path):
    from dagspec.spec.errors import DefinitionError
    from dagspec.spec.load import parse_definition

    query = "SELECT * FROM {{ history(\"x'); DROP TABLE mart.orders; --\") }} AS h"
    raw = json.dumps({"dag_id": "t_history_sql", "start_date": "2025-01-01",
                      "steps": steps({"step": "publish_orders"}, query)}).encode()
    with pytest.raises(DefinitionError) as caught:
        parse_definition(raw, "t_history_sql.json", check_sql=True)
    (problem,) = caught.value.problems
    assert problem.path == "$.steps[2].query"
    assert "names no entry of the step's 'history' (it has: 'publish_orders')" in problem.message
    assert "to 'history'" in problem.fix
