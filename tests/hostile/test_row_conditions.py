"""A row_condition on another column than the check's own: the column it names is read too, the condition is
never run by dagspec, and what GX would trip over is refused with the path and the fix."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest
from support.day_runs import run_day

from dagspec.spec import DefinitionError, parse_definition
from dagspec.stages.context import StepFailed

PAID_AMOUNT = {
    "type": "expect_column_values_to_be_between",
    "kwargs": {
        "column": "amount",
        "min_value": 0,
        "max_value": 100,
        "row_condition": "kind == 'paid'",
        "condition_parser": "pandas",
    },
}


def _steps(expectations: list[dict]) -> list[dict]:
    return [
        {
            "id": "extract_pay",
            "kind": "extract",
            "source": {"table": "pay", "incremental_column": "ordered_at"},
            "target": {"schema": "raw", "table": "pay"},
        },
        {"id": "check_pay", "kind": "validate", "input": "extract_pay", "expectations": expectations},
    ]


def _write(folder, expectations: list[dict]):
    path = folder / "pay.json"
    path.write_text(json.dumps({"dag_id": "pay", "start_date": "2025-01-01", "steps": _steps(expectations)}))
    return path


@pytest.fixture
def pay_rows(data_home):
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute("CREATE TABLE pay (id INTEGER, ordered_at TEXT, kind TEXT, amount INTEGER)")
        # 500 is out of bounds only on a refund row: the condition must keep it out of the check.
        con.executemany(
            "INSERT INTO pay VALUES (?, '2025-03-01 10:00:00', ?, ?)",
            [(1, "paid", 10), (2, "paid", 99), (3, "refund", 500), (4, "paid", 150)],
        )
    return data_home


def test_a_condition_on_another_column_filters_the_rows_gx_checks(pay_rows, tmp_path):
    got = run_day(_write(tmp_path, [{**PAID_AMOUNT, "severity": "warn"}]), date(2025, 3, 1))["check_pay"]["2025-03-01"]
    [result] = json.loads(Path(got["result"]).read_text())["results"]
    assert result["success"] is False
    assert result["result"]["element_count"] == 3  # the refund row was filtered out by the condition
    assert result["result"]["unexpected_count"] == 1 and result["result"]["partial_unexpected_list"] == [150]


def test_a_condition_naming_a_missing_column_stops_the_step_with_the_path_and_the_fix(pay_rows, tmp_path):
    check = {**PAID_AMOUNT, "kwargs": {**PAID_AMOUNT["kwargs"], "row_condition": "status == 'paid'"}}
    with pytest.raises(StepFailed) as info:
        run_day(_write(tmp_path, [check]), date(2025, 3, 1))
    said = str(info.value)
    assert (
        "validate check_pay: expectations[0].kwargs.row_condition names column(s) status that the batch does "
        "not have (it has: " in said
    )
    assert "fix: name a column of the batch" in said and "is not defined" not in said


def _problems(condition: str, parser: str | None = "pandas") -> list[tuple[str, str, str]]:
    kwargs = {**PAID_AMOUNT["kwargs"], "row_condition": condition}
    if parser is None:
        kwargs.pop("condition_parser")
    else:
        kwargs["condition_parser"] = parser
    raw = json.dumps(
        {"dag_id": "pay", "start_date": "2025-01-01", "steps": _steps([{"type": PAID_AMOUNT["type"], "kwargs": kwargs}])}
    ).encode()
    with pytest.raises(DefinitionError) as info:
        parse_definition(raw, "pay.json")
    return [(p.path, p.message, p.fix) for p in info.value.problems]


@pytest.mark.parametrize(
    "condition",
    [
        "__import__('os').system('touch /tmp/pwned')",
        "@pd.read_csv('/etc/passwd')",
        "kind.__class__.__bases__",
        "kind.str.contains('(a+)+$')",
        "kind == 'paid'; import os",
        "amount.sum() > 0",
    ],
)
def test_conditions_beyond_a_row_filter_are_refused_at_validate_time(condition):
    [(path, message, fix)] = _problems(condition)
    assert path == "$.steps[1].expectations[0].kwargs.row_condition"
    assert condition in message or repr(condition) in message
    assert fix


def test_a_condition_without_its_parser_is_refused_with_the_fix():
    [(path, message, fix)] = _problems("kind == 'paid'", parser=None)
    assert path == "$.steps[1].expectations[0].kwargs.row_condition"
    assert "needs condition_parser 'pandas'" in message and fix == 'add "condition_parser": "pandas"'


def test_filters_pandas_reads_pass_validate_and_name_their_columns():
    from dagspec.spec.expectation_args import argument_problems
    from dagspec.spec.suites import Check

    kwargs = {
        "column": "amount",
        "condition_parser": "pandas",
        "row_condition": "(kind in ['paid', 'due']) & ~`paid at`.isna() | ~kind.str.startswith('x')",
    }
    assert argument_problems("expect_column_values_to_not_be_null", kwargs) == []
    assert Check("expect_column_values_to_not_be_null", kwargs).columns() == ["amount", "kind", "paid at"]


def _revenue_checks(tmp_path, run_on: str, kwargs: dict) -> Path:
    """orders -> daily_revenue (one row per channel) in the warehouse, checked there with one condition."""
    path = tmp_path / "rev.json"
    path.write_text(
        json.dumps(
            {
                "dag_id": "rev",
                "start_date": "2025-01-01",
                "steps": [
                    {
                        "id": "extract_orders",
                        "kind": "extract",
                        "source": {"table": "orders", "incremental_column": "ordered_at"},
                        "target": {"schema": "raw", "table": "orders"},
                    },
                    {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract_orders"]},
                    {
                        "id": "check_revenue",
                        "kind": "validate",
                        "input": "daily_revenue",
                        "run_on": run_on,
                        "expectations": [
                            {
                                "type": "expect_column_values_to_be_between",
                                "severity": "warn",
                                "kwargs": {"column": "orders", "min_value": 1, "max_value": 1, **kwargs},
                            }
                        ],
                    },
                ],
            }
        )
    )
    return path


def _web_result(data_home) -> dict:
    [result] = json.loads((data_home / "reports/rev/check_revenue/batch_date=2025-03-01.json").read_text())["results"]
    return result


@pytest.mark.service
def test_in_postgres_gx_sql_engine_takes_its_own_parser_and_refuses_pandas_with_the_fix(data_home, tmp_path, pg_db):
    web = {"row_condition": 'col("channel")=="web"', "condition_parser": "great_expectations"}
    run_day(_revenue_checks(tmp_path, "warehouse", web), date(2025, 3, 1))
    assert _web_result(data_home)["result"]["element_count"] == 1  # one channel row of four: web

    pandas = {"row_condition": "channel == 'web'", "condition_parser": "pandas"}
    with pytest.raises(StepFailed) as info:
        run_day(_revenue_checks(tmp_path, "warehouse", pandas), date(2025, 3, 1))
    assert "expectations[0].kwargs.condition_parser is 'pandas', but this check runs in GX's SQL engine" in str(
        info.value
    ) and "fix: write the condition for 'great_expectations'" in str(info.value)

    gone = {"row_condition": 'col("region")=="eu"', "condition_parser": "great_expectations"}
    with pytest.raises(StepFailed, match=r"row_condition names column\(s\) region that the batch does not have"):
        run_day(_revenue_checks(tmp_path, "warehouse", gone), date(2025, 3, 1))


def test_in_a_duckdb_warehouse_the_condition_column_is_read_from_the_warehouse(data_home, tmp_path):
    web = {"row_condition": "channel == 'web'", "condition_parser": "pandas"}
    run_day(_revenue_checks(tmp_path, "warehouse", web), date(2025, 3, 1))
    assert _web_result(data_home)["result"]["element_count"] == 1


def test_a_condition_on_a_column_the_extract_does_not_read_is_refused_at_validate_time():
    steps = _steps([{"type": PAID_AMOUNT["type"], "kwargs": {**PAID_AMOUNT["kwargs"], "row_condition": "status == 'x'"}}])
    steps[0]["source"]["columns"] = ["id", "kind", "amount"]
    raw = json.dumps({"dag_id": "pay", "start_date": "2025-01-01", "steps": steps}).encode()
    with pytest.raises(DefinitionError) as info:
        parse_definition(raw, "pay.json")
    [problem] = info.value.problems
    assert problem.path == "$.steps[1].expectations[0].kwargs.row_condition"
    assert problem.message == (
        "the row_condition names column(s) status, which step 'extract_pay' does not read "
        "(it reads: id, kind, amount, ordered_at)"
    )
    assert problem.fix == "name one of those columns, or add status to its source's columns"
    # The columns it reads, and the ones dagspec adds, are fine.
    steps[1]["expectations"][0]["kwargs"]["row_condition"] = "kind == 'paid' and batch_date >= '2025-01-01'"
    parse_definition(json.dumps({"dag_id": "pay", "start_date": "2025-01-01", "steps": steps}).encode(), "pay.json")
