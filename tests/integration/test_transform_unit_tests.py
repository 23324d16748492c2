"""`dagspec test`: transform unit tests (given rows in, expected rows out) on embedded DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from support.warehouse_fixtures import pg_rows
from typer.testing import CliRunner

from dagspec.cli import app
from dagspec.spec.transform_tests import Expected
from dagspec.transform_tests.compare import compare

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags" / "definitions"

REVENUE_SQL = ("SELECT channel, count(*) AS orders, sum(amount) AS revenue FROM {{ ref('extract_orders') }} "
               "WHERE ordered_at >= :from_date AND ordered_at < :to_date GROUP BY channel")
ORDERS = {"columns": {"ordered_at": "timestamp", "amount": "decimal(12,2)"}, "rows": [
    {"channel": "web", "ordered_at": "2025-03-01 08:00:00", "amount": "20.00"},
    {"channel": "web", "ordered_at": "2025-03-01 09:00:00", "amount": "10.50"},
    {"channel": "store", "ordered_at": "2025-03-01 10:00:00", "amount": "5.25"},
    {"channel": "store", "ordered_at": "2025-03-02 00:00:00", "amount": "99.00"}]}


def project(tmp_path: Path, monkeypatch, tests: object, steps: list[dict] | None = None) -> Path:
    """A definitions folder with one definition (t_unit: an extract and a transform) and its tests file."""
    folder = tmp_path / "definitions"
    (folder / "tests").mkdir(parents=True)
    steps = steps or [{"id": "revenue", "kind": "transform", "query": REVENUE_SQL, "inputs": ["extract_orders"],
                       "target": {"schema": "analytics", "table": "revenue"}}]
    definition = {"dag_id": "t_unit", "start_date": "2025-01-01", "params": {"floor": 0}, "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}}, *steps]}
    (folder / "t_unit.json").write_text(json.dumps(definition))
    text = tests if isinstance(tests, str) else json.dumps(tests)
    (folder / "tests" / "t_unit.json").write_text(text)
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(folder))
    return folder


def case(expect_rows: list[dict], **extra: object) -> dict:
    return {"tests": [{"name": "revenue by channel", "step": "revenue", "batch_date": "2025-03-01",
                       "given": {"extract_orders": ORDERS}, "expect": {"rows": expect_rows}, **extra}]}


GOOD = [{"channel": "web", "orders": 2, "revenue": "30.50"}, {"channel": "store", "orders": 1, "revenue": "5.25"}]


def dagspec_test(*args: str):
    return CliRunner().invoke(app, ["test", *args])


def test_the_examples_pass(monkeypatch):
    monkeypatch.setenv("DAGSPEC_DEFINITIONS", str(EXAMPLES))
    files = sorted((EXAMPLES / "tests").glob("*.json"))
    cases = sum(len(json.loads(f.read_text())["tests"]) for f in files)
    assert {f.stem for f in files} == {"orders_daily", "customers_snapshot", "orders_model"}  # every transform
    result = dagspec_test()
    assert result.exit_code == 0, result.output
    assert f"{cases} passed, 0 failed" in result.output
    assert result.output.count("PASS ") == cases


def test_a_passing_case_compares_decimals_as_decimals(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch, case(GOOD))
    result = dagspec_test("t_unit", "-v")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    assert "-- parameters: from_date='2025-03-01 00:00:00', to_date='2025-03-02 00:00:00'" in result.output


def test_a_failing_case_shows_missing_unexpected_and_changed_rows(tmp_path, monkeypatch):
    wrong = [{"channel": "web", "orders": 2, "revenue": "31.50"}, {"channel": "mobile", "orders": 7, "revenue": "1"}]
    project(tmp_path, monkeypatch, case(wrong))
    result = dagspec_test()
    assert result.exit_code == 1, result.output
    out = result.output
    assert "FAIL t_unit.revenue revenue by channel" in out
    assert "2 row(s) produced; 1 missing, 1 unexpected, 1 with other values" in out  # mobile shares nothing
    # web: same channel and orders, revenue 31.50 expected, 30.50 produced.
    assert any("revenue" in line and "31.50" in line and "30.50" in line for line in out.splitlines())
    assert "0 passed, 1 failed" in out


def test_rows_with_nothing_in_common_are_missing_and_unexpected(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch, case([{"channel": "mobile", "orders": 9, "revenue": "1.00"}, *GOOD[:1]]))
    out = dagspec_test().output
    assert "1 missing, 1 unexpected, 0 with other values" in out
    lines = out.splitlines()
    assert any(line.lstrip().startswith("-") and "'mobile'" in line and "1.00" in line for line in lines)
    assert any(line.lstrip().startswith("+") and "'store'" in line and "5.25" in line for line in lines)


def test_ordered_compares_positions_and_a_declared_type_must_match(tmp_path, monkeypatch):
    steps = [{"id": "revenue", "kind": "transform", "query": REVENUE_SQL + " ORDER BY channel DESC",
              "inputs": ["extract_orders"], "materialization": "table"}]
    tests = case(GOOD, expect={"rows": GOOD[::-1], "ordered": True})
    project(tmp_path, monkeypatch, tests, steps)
    result = dagspec_test()
    assert result.exit_code == 1
    assert "2 with other values" in result.output  # store first expected, web first produced
    tests["tests"][0]["expect"] = {"rows": GOOD, "ordered": True, "columns": {"revenue": "double"}}
    project(tmp_path / "again", monkeypatch, tests, steps)
    result = dagspec_test()
    assert result.exit_code == 1
    assert "column 'revenue' is decimal128(38, 2), expected double" in result.output


def test_compare_keeps_exact_types():
    result = pa.table({"n": pa.array([Decimal("1.10")], pa.decimal128(12, 2)), "d": pa.array([1.1])})
    assert compare(result, Expected(rows=[{"n": "1.1", "d": 1.1}])).passed
    diff = compare(result, Expected(rows=[{"n": "1.11", "d": 1.1}]))
    assert diff.changed[0].expected == (Decimal("1.11"), 1.1) and diff.changed[0].got == (Decimal("1.10"), 1.1)
    assert compare(result, Expected(rows=[{"n": True, "d": 1.1}])).column_problems == [
        "expect.rows[0].n: True is not a decimal number (write it as text, e.g. \"10.50\"), but the result's column "
        "'n' is decimal128(12, 2)"]


def test_a_view_reads_the_given_rows_as_whole_tables(tmp_path, monkeypatch):
    steps = [{"id": "revenue", "kind": "transform", "query": REVENUE_SQL, "inputs": ["extract_orders"],
              "materialization": "table"},
             {"id": "top", "kind": "transform", "inputs": ["revenue"], "materialization": "view",
              "query": "SELECT channel FROM {{ ref('revenue') }} WHERE revenue > {{ params.floor }}"}]
    tests = {"tests": [{"name": "view", "step": "top", "params": {"floor": 10},
                        "given": {"revenue": {"columns": {"revenue": "decimal(12,2)"},
                                              "rows": [{"channel": "web", "revenue": "30.50"},
                                                       {"channel": "store", "revenue": "5.25"}]}},
                        "expect": {"rows": [{"channel": "web"}]}}]}
    project(tmp_path, monkeypatch, tests, steps)
    result = dagspec_test()
    assert result.exit_code == 0, result.output


def test_the_sql_failing_in_the_warehouse_is_a_failure_with_its_message(tmp_path, monkeypatch):
    steps = [{"id": "revenue", "kind": "transform", "query": "SELECT no_such_column FROM {{ ref('extract_orders') }}",
              "inputs": ["extract_orders"]}]
    project(tmp_path, monkeypatch, case(GOOD), steps)
    result = dagspec_test()
    assert result.exit_code == 1
    assert "ERROR t_unit.revenue revenue by channel" in result.output
    assert "no_such_column" in result.output


def test_a_bad_test_file_names_file_path_and_fix(tmp_path, monkeypatch):
    tests = {"tests": [
        {"name": "a", "step": "extract_orders", "given": {}, "expect": {"rows": []}},
        {"name": "b", "step": "revenue", "given": {"extract_ordres": ORDERS}, "expect": {"rows": [], "sorted": True}},
        {"name": "c", "step": "revenue", "batch_date": "March 1st", "params": {"nope": 1},
         "given": {"extract_orders": {"columns": {"amount": "money"}, "rows": []}}, "expect": {"rows": []}},
    ]}
    project(tmp_path, monkeypatch, tests)
    result = dagspec_test()
    assert result.exit_code == 2, result.output
    out = result.output.replace("\n", " ")
    name = "definitions/tests/t_unit.json"
    assert f"{name}: $.tests[1].expect.sorted: unknown key 'sorted'" in out
    assert f"{name}: $.tests[2].batch_date: 'March 1st' is not a date (fix: write dates as YYYY-MM-DD" in out
    assert f"{name}: $.tests[2].given.extract_orders.columns.amount: 'money' is not a column type (fix: use one of:" in out
    # The rules against the definition run once the file's shape is right.
    tests["tests"] = tests["tests"][:1] + [{**tests["tests"][1], "expect": {"rows": []}}]
    project(tmp_path / "again", monkeypatch, tests)
    out = dagspec_test().output.replace("\n", " ")
    assert f"{name}: $.tests[0].step: 'extract_orders' is not a transform step of t_unit (fix: name one of its " \
           "transforms: revenue)" in out
    assert f"{name}: $.tests[1].given.extract_ordres: 'extract_ordres' is not an input of revenue (fix: did you " \
           "mean 'extract_orders'?)" in out
    assert f"{name}: $.tests[1].given: no rows for input 'extract_orders' of revenue" in out


def test_a_cell_that_does_not_fit_its_column_is_a_usage_error(tmp_path, monkeypatch):
    given = {"columns": {"amount": "decimal(12,2)"}, "rows": [{"channel": "web", "amount": "12.345"}]}
    tests = case(GOOD)
    tests["tests"][0]["given"] = {"extract_orders": given}
    project(tmp_path, monkeypatch, tests)
    result = dagspec_test()
    assert result.exit_code == 2
    assert "$.given.extract_orders.rows[0].amount: '12.345' does not fit 2 decimal place(s)" in result.output
    tests["tests"][0]["given"] = {"extract_orders": {"rows": [{"channel": None}]}}
    project(tmp_path / "again", monkeypatch, tests)
    out = dagspec_test().output.replace("\n", " ")
    assert "column 'channel' has no value that is not null, so its type is unknown" in out
    assert "declare it: \"columns\": {\"channel\": \"<type>\"}" in out


def test_an_unknown_definition_and_a_broken_file(tmp_path, monkeypatch):
    project(tmp_path, monkeypatch, "{not json")
    assert dagspec_test("nope").exit_code == 2
    result = dagspec_test("t_unit")
    assert result.exit_code == 2
    assert "definitions/tests/t_unit.json" in result.output


@pytest.mark.usefixtures("data_home")
def test_postgres_runs_in_a_schema_of_its_own_and_drops_it(tmp_path, monkeypatch, pg_db):
    project(tmp_path, monkeypatch, case(GOOD))
    result = dagspec_test("--warehouse", "-v")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
    assert "%(from_date)s" in result.output  # psycopg's parameters: it ran in PostgreSQL
    schemas = pg_rows(pg_db, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dagspec_test%' "
                             "OR nspname = 'analytics'")
    assert schemas == []  # the case's schema is dropped; the definition's target was never touched
    wrong = [{"channel": "web", "orders": 2, "revenue": "31.50"}, GOOD[1]]
    project(tmp_path / "again", monkeypatch, case(wrong))
    result = dagspec_test("--warehouse")
    assert result.exit_code == 1
    assert "1 with other values" in result.output
    assert pg_rows(pg_db, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'dagspec_test%'") == []


def test_validate_checks_the_test_files_it_finds(tmp_path, monkeypatch):
    folder = project(tmp_path, monkeypatch, {"tests": [{"name": "a", "step": "revenue", "given": {},
                                                       "expect": {"rows": []}}]})
    (folder / "tests" / "gone.json").write_text(json.dumps(case(GOOD)))
    result = CliRunner().invoke(app, ["validate", "--no-connections"])
    assert result.exit_code == 1
    out = result.output.replace("\n", " ")
    assert "definitions/tests/t_unit.json: $.tests[0].given: no rows for input 'extract_orders' of revenue" in out
    assert "definitions/tests/gone.json: $: no valid definition beside it has dag_id 'gone'" in out
    assert "1 valid definition(s), 2 problem(s)" in out


def test_a_bundle_s_tests_use_its_own_sql_and_no_tests_folder_is_a_definition(tmp_path, monkeypatch):
    from dagspec.spec.discovery import definition_files

    folder = project(tmp_path, monkeypatch, case(GOOD))
    bundle = folder / "team_b"
    (bundle / "sql").mkdir(parents=True)
    (bundle / "tests").mkdir()
    (bundle / "sql" / "revenue.sql").write_text(REVENUE_SQL)
    definition = json.loads((folder / "t_unit.json").read_text())
    definition["dag_id"] = "t_bundle"
    definition["steps"][0]["target"]["table"] = "bundle_orders"
    definition["steps"][1] = {"id": "revenue", "kind": "transform", "sql": "revenue.sql", "inputs": ["extract_orders"]}
    (bundle / "t_bundle.json").write_text(json.dumps(definition))
    (bundle / "tests" / "t_bundle.json").write_text(json.dumps(case(GOOD)))
    assert sorted(str(p.relative_to(folder)) for p in definition_files(folder)) == ["t_unit.json", "team_b/t_bundle.json"]
    result = dagspec_test()
    assert result.exit_code == 0, result.output
    assert "PASS t_bundle.revenue" in result.output and "PASS t_unit.revenue" in result.output
    assert "2 passed, 0 failed" in result.output


def test_a_merge_transform_is_tested_through_its_merge(tmp_path, monkeypatch):
    steps = [{"id": "revenue", "kind": "transform", "query": REVENUE_SQL, "inputs": ["extract_orders"],
              "unique_key": ["channel"]}]
    project(tmp_path, monkeypatch, case(GOOD), steps)
    result = dagspec_test("-v")
    assert result.exit_code == 0, result.output
    assert "1 passed, 0 failed" in result.output
