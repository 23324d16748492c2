"""Hostile expectations: arguments GX would refuse, misread or only fail on at run time are refused by
`dagspec validate` with a JSON path and a fix; where dagspec computes a check itself it gives GX's verdict.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from dagspec.checks.sql_engine import Evaluator
from dagspec.spec import DefinitionError, parse_definition
from dagspec.spec.suites import Check, SuiteError, load_suite

ROOT = Path(__file__).resolve().parents[2]


def definition(expectations: list | None = None, suite: str | None = None) -> bytes:
    check = {"id": "check_orders", "kind": "validate", "input": "extract_orders"}
    if expectations is not None:
        check["expectations"] = expectations
    if suite is not None:
        check["suite"] = suite
    return json.dumps({"dag_id": "hostile_expect", "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract",
         "source": {"conn_id": "dagspec_source", "table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        check]}).encode()


def problems(raw: bytes, **kw) -> list[tuple[str, str, str]]:
    with pytest.raises(DefinitionError) as info:
        parse_definition(raw, "hostile.json", **kw)
    return [(p.path, p.message, p.fix) for p in info.value.problems]


def one(type_: str, kwargs: dict) -> list[tuple[str, str, str]]:
    return problems(definition([{"type": type_, "kwargs": kwargs}]))


def test_value_set_as_a_string_is_refused_and_no_longer_passes_43_cancelled_rows():
    """Before: value_set "cancelled" became the letters c,a,n,e,l,d and 43 'cancelled' rows passed."""
    kwargs = {"column": "status", "value_set": "cancelled"}
    [(path, message, fix)] = one("expect_column_values_to_not_be_in_set", kwargs)
    assert path == "$.steps[1].expectations[0].kwargs.value_set"
    assert message == 'expected a list, got "cancelled"' and fix == 'write a list, e.g. ["cancelled"]'
    # The same check written right fails on the 43 rows.
    con = duckdb.connect()
    con.register("t", pa.table({"status": ["cancelled"] * 43 + ["placed"] * 57}))
    [result] = Evaluator(con, "t").run([Check("expect_column_values_to_not_be_in_set",
                                              {"column": "status", "value_set": ["cancelled"]})])
    assert result["success"] is False and result["result"]["unexpected_count"] == 43


@pytest.mark.parametrize("type_, kwargs, path, message", [
    ("expect_column_values_to_not_be_null", {"column": "status", "mostly": -5}, "kwargs.mostly",
     "must be between 0 and 1, got -5"),
    ("expect_column_values_to_not_be_null", {"column": "status", "mostly": 1.5}, "kwargs.mostly",
     "must be between 0 and 1, got 1.5"),
    ("expect_column_values_to_not_be_null", {"column": "status", "mostly": "0.9"}, "kwargs.mostly",
     'expected a number, got "0.9"'),
    ("expect_column_values_to_not_be_null", {"column": 5}, "kwargs.column", "expected a string, got 5"),
    ("expect_column_values_to_not_be_null", {"column": ""}, "kwargs.column", "the column name is empty"),
    ("expect_column_values_to_be_in_set", {"value_set": ["a"]}, "kwargs",
     "required argument 'column' of expect_column_values_to_be_in_set is missing"),
    ("expect_column_values_to_be_in_set", {"column": "a", "value_set": [["a"]]}, "kwargs.value_set[0]",
     'expected a plain value (string, number, true/false, null), got ["a"]'),
    ("expect_column_values_to_match_regex", {"column": "a", "regex": "(unclosed"}, "kwargs.regex",
     'regex "(unclosed" does not compile: missing ), unterminated subpattern at position 0'),
    ("expect_column_values_to_match_regex_list", {"column": "a", "regex_list": ["ok", "*bad"]}, "kwargs.regex_list[1]",
     'regex "*bad" does not compile: nothing to repeat at position 0'),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": 9, "max_value": 1}, "kwargs.min_value",
     "min_value 9 is above max_value 1: no value can pass"),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": 1, "max_value": 1, "strict_max": True},
     "kwargs.min_value", "min_value 1 is above max_value 1 (strict bounds): no value can pass"),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": "2025-03-01", "max_value": "2025-01-01"},
     "kwargs.min_value", 'min_value "2025-03-01" is above max_value "2025-01-01": no value can pass'),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": 1, "max_value": "2025-01-01"},
     "kwargs.max_value", 'min_value 1 and max_value "2025-01-01" cannot be compared (a number and a date, '
     'or a time zone on one only)'),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": "yesterday"}, "kwargs.min_value",
     "expected a number, an ISO date string ('2025-01-31'), an ISO date-time string ('2025-01-31T12:00:00Z') "
     'or null, got "yesterday"'),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": True}, "kwargs.min_value",
     "expected a number, an ISO date string ('2025-01-31'), an ISO date-time string ('2025-01-31T12:00:00Z') "
     "or null, got true"),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": {"$PARAMETER": "lo"}}, "kwargs.min_value",
     'suite parameter {"$PARAMETER": "lo"} is not supported: dagspec passes no parameter values to Great '
     "Expectations, so it would never be resolved"),
    ("expect_column_values_to_be_between", {"column": "a", "min_value": 0, "strict_min": "false"}, "kwargs.strict_min",
     'expected true or false, got "false"'),
    ("expect_column_value_lengths_to_be_between", {"column": "a", "min_value": 2.5}, "kwargs.min_value",
     "expected a whole number or null, got 2.5"),
    ("expect_column_values_to_be_between", {"column": "a", "mostly": 0.5}, "kwargs",
     "expect_column_values_to_be_between needs min_value, max_value or both (Great Expectations refuses neither)"),
    ("expect_table_row_count_to_equal", {"value": "10"}, "kwargs.value", 'expected a whole number, got "10"'),
    ("expect_table_row_count_to_be_between", {"min_value": 1, "max_vale": 2}, "kwargs.max_vale",
     "unknown argument 'max_vale' for expect_table_row_count_to_be_between"),
    ("expect_compound_columns_to_be_unique", {"column_list": "a,b"}, "kwargs.column_list",
     'expected a list of strings, got "a,b"'),
    ("expect_compound_columns_to_be_unique", {"column_list": ["a"], "ignore_row_if": "nver"},
     "kwargs.ignore_row_if",
     'expected one of "all_values_are_missing", "any_value_is_missing", "never", got "nver"'),
])
def test_bad_arguments_are_refused_at_validate_time(type_, kwargs, path, message):
    got = one(type_, kwargs)
    assert [(p, m) for p, m, _ in got] == [(f"$.steps[1].expectations[0].{path}", message)]
    assert all(fix for _, _, fix in got)  # every refusal says what to write instead


def test_good_arguments_pass():
    raw = definition([
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "ordered_at", "min_value": "2025-01-01", "max_value": "2025-12-31T23:59:59"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0, "mostly": 1}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "currency", "regex": "^[A-Z]{3}$"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": []}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "result_format": "SUMMARY"}},
    ])
    assert len(parse_definition(raw, "good.json").steps[1].expectations) == 5


def test_suite_file_arguments_are_checked_at_validate_time_and_at_run_time(tmp_path):
    suite = {"name": "s", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id", "mostly": "high"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status", "value_set": "placed"}},
    ]}
    (tmp_path / "bad.json").write_text(json.dumps(suite))
    got = problems(definition(suite="bad.json"), sql_dir=tmp_path, suite_dir=tmp_path)
    assert got == [
        ("$.steps[1].suite", 'suite file bad.json: expectations[0].kwargs.mostly: expected a number, got "high"',
         "use a number from 0 to 1, e.g. 0.95"),
        ("$.steps[1].suite", 'suite file bad.json: expectations[1].kwargs.value_set: expected a list, got "placed"',
         'write a list, e.g. ["placed"]'),
    ]
    with pytest.raises(SuiteError, match=r"expectations\[1\]\.kwargs\.value_set: expected a list"):
        load_suite(tmp_path / "bad.json", "bad.json")


def test_the_shipped_suite_and_definitions_still_pass():
    from dagspec.spec import load_definition

    assert len(load_suite(ROOT / "include" / "expectations" / "orders.json", "orders.json")) == 8
    for path in (ROOT / "dags" / "definitions").glob("*.json"):
        load_definition(path, sql_dir=ROOT / "include" / "sql")


# Defect 7: where dagspec computes a check itself it gives GX's verdict (the differential test in
# tests/unit/test_gx_differential.py covers the rest); these are the three disagreements reported.

def _both(table: pa.Table, checks: list[Check]) -> list[tuple[dict, dict]]:
    from dagspec.checks import gx_engine

    con = duckdb.connect()
    con.register("batch", table)
    ev = Evaluator(con, "batch")
    assert all(ev.handles(c) for c in checks)
    ours = ev.run(checks)
    theirs = gx_engine.run_pandas(con.execute("SELECT * FROM batch").fetch_df(), checks, "hostile", ev.date_columns(),
                                  keep_errors=True)
    return list(zip(ours, theirs))


def test_iso_bounds_on_a_timestamp_column_are_compared_as_gx_compares_them():
    """Before: max/min checks raised "'<' not supported between datetime and str" and failed the task."""
    import datetime as dt

    table = pa.table({"ordered_at": pa.array([dt.datetime(2025, 3, 1, 8), dt.datetime(2025, 3, 1, 23)],
                                             pa.timestamp("us"))})
    checks = [Check("expect_column_max_to_be_between", {"column": "ordered_at", "max_value": "2025-03-02T00:00:00"},
                    index=0),
              Check("expect_column_min_to_be_between", {"column": "ordered_at", "min_value": "2025-03-01 09:00:00"},
                    index=1),
              Check("expect_column_values_to_be_between", {"column": "ordered_at", "min_value": "2025-03-01T09:00:00"},
                    index=2),
              Check("expect_column_max_to_be_between", {"column": "ordered_at", "max_value": "2025-03-02"}, index=3)]
    got = _both(table, checks)
    assert [o["success"] for o, _ in got] == [g["success"] for _, g in got] == [True, False, False, False]
    assert got[0][0]["result"]["observed_value"] == "2025-03-01T23:00:00"
    assert got[2][0]["result"]["unexpected_count"] == got[2][1]["result"]["unexpected_count"] == 1
    # A date-only bound: GX cannot compare it with timestamps; dagspec says so, and what to write.
    assert "write \"2025-03-02T00:00:00\"" in got[3][0]["exception_info"]["exception_message"]


def test_suite_parameters_are_refused_with_a_clear_error_not_a_crash():
    con = duckdb.connect()
    con.register("batch", pa.table({"amount": [1.0, 2.0]}))
    [result] = Evaluator(con, "batch").run([Check("expect_column_values_to_be_between",
                                                  {"column": "amount", "min_value": {"$PARAMETER": "lo"}})])
    assert result["success"] is False and result["exception_info"]["raised_exception"] is True
    assert "suite parameter(s) min_value={'$PARAMETER': 'lo'} are not supported" in \
        result["exception_info"]["exception_message"]


def test_regex_on_a_non_text_column_goes_to_gx_which_passes_it():
    """Before: DuckDB raised a binder error (regexp_matches(INTEGER, ...)); GX passes an all-NULL column."""
    from dagspec.checks import gx_engine

    con = duckdb.connect()
    con.register("batch", pa.table({"code": pa.array([None, None, None], pa.int32())}))
    check = Check("expect_column_values_to_match_regex", {"column": "code", "regex": "^[A-Z]{3}$"})
    assert Evaluator(con, "batch").handles(check) is False
    [result] = gx_engine.run_pandas(con.execute("SELECT * FROM batch").fetch_df(), [check], "hostile")
    assert result["success"] is True and result["result"]["unexpected_count"] == 0


def test_an_error_inside_gx_reaches_the_report_as_one_message():
    """GX files a metric's error under the metric's id; the summary in the task log showed nothing."""
    import datetime as dt

    from dagspec.checks import gx_engine
    from dagspec.stages.validate_report import summary

    con = duckdb.connect()
    con.register("batch", pa.table({"ts": pa.array([dt.datetime(2025, 3, 1)], pa.timestamp("us"))}))
    check = Check("expect_column_values_to_be_between", {"column": "ts", "min_value": "2025-03-01"})
    [result] = gx_engine.run_pandas(con.execute("SELECT * FROM batch").fetch_df(), [check], "hostile",
                                    keep_errors=True)
    assert result["exception_info"]["raised_exception"] is True
    assert "Cannot compare Timestamp with datetime.date" in result["exception_info"]["exception_message"]
    result.update(type=check.type, severity="fail")
    assert "error: Cannot compare Timestamp" in summary({"results": [result]})


# Defect 10 (part): a model file swapped in the artifact store for another valid model is refused on load.

def test_a_swapped_model_file_is_refused_by_its_pinned_sha256(data_home, tmp_path):
    from sklearn.linear_model import LogisticRegression

    from dagspec.connections import env_resolver
    from dagspec.ml.registry import MODEL_FILE, SHA256_TAG, Registry, UnsafeModel, file_sha256, save_model

    reg = Registry.open(env_resolver)
    X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    registered, other = LogisticRegression().fit(X, y), LogisticRegression(C=0.01).fit(X, [1, 1, 0, 0])
    run_id = reg.start_run("hostile_model", {}, "hostile")
    (tmp_path / "model").mkdir()
    save_model(registered, tmp_path / "model" / MODEL_FILE)
    reg.log_files(run_id, tmp_path / "model", "model")
    version = reg.register("hostile_model", run_id, {})
    reg.finish(run_id)
    pinned = file_sha256(tmp_path / "model" / MODEL_FILE)
    assert reg.version("hostile_model", version).tags[SHA256_TAG] == pinned
    assert reg.load(run_id).predict([[3.0]]).tolist() == [1]

    artifact = Path(reg.client.get_run(run_id).info.artifact_uri.removeprefix("file://")) / "model" / MODEL_FILE
    save_model(other, artifact)  # a valid skops model of a trusted type: only the hash tells them apart
    with pytest.raises(UnsafeModel, match="it is not the file registered .* pinned at registration"):
        reg.load(run_id)


QUARANTINE = {"schema": "quarantine", "table": "orders"}
NOT_NULL = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "status"}}]


@pytest.mark.parametrize(("extra", "path", "message"), [
    ({"on_fail": "drop_rows"}, "$.steps[1].quarantine", "on_fail 'drop_rows' needs a quarantine table"),
    ({"max_dropped": 10}, "$.steps[1].max_dropped", "'max_dropped' limits on_fail 'drop_rows'"),
    ({"on_fail": "drop_rows", "quarantine": QUARANTINE, "max_dropped": 1.5}, "$.steps[1].max_dropped",
     "is a share of the batch's rows"),
    ({"on_fail": "drop_rows", "quarantine": QUARANTINE, "max_dropped": -3}, "$.steps[1].max_dropped", "below 0"),
    ({"on_fail": "drop"}, "$.steps[1].on_fail", "'stop' or 'drop_rows'"),
])
def test_drop_rows_settings_are_refused_by_path(extra, path, message):
    raw = json.loads(definition(NOT_NULL))
    raw["steps"][1].update(extra)
    found = problems(json.dumps(raw).encode())
    assert any(p == path and message in m for p, m, _ in found), found


def test_a_drop_rows_check_must_be_the_only_check_of_its_input():
    raw = json.loads(definition(NOT_NULL))
    raw["steps"][1].update(on_fail="drop_rows", quarantine=QUARANTINE)
    raw["steps"].append({"id": "check_again", "kind": "validate", "input": "extract_orders", "expectations": NOT_NULL})
    assert problems(json.dumps(raw).encode()) == [(
        "$.steps[1].on_fail", "validate steps check_again also check 'extract_orders': a step with on_fail "
        "'drop_rows' must be the only validate step of its input",
        "move their expectations into 'check_orders' (each keeps its severity)")]


def test_hostile_column_names_and_values_are_dropped_as_data(data_home, tmp_path):
    """Column names and values that would be SQL if pasted: the passing rows and the quarantine are exact."""
    import sqlite3

    from support.expected import warehouse_rows

    from dagspec.runner import run_pipeline, window_of_day
    from dagspec.spec import load_definition

    evil, quote = 'x"; DROP TABLE raw.evil; --', "it's"
    with sqlite3.connect(data_home / "source.db") as con:
        con.execute(f'CREATE TABLE evil (id INTEGER, ordered_at TEXT, "{evil.replace(chr(34), chr(34) * 2)}" TEXT, '
                    f'"{quote}" INTEGER)')
        con.executemany("INSERT INTO evil VALUES (?, '2025-03-01 10:00:00', ?, ?)", [
            (1, "ok", 1), (2, "'); DROP TABLE quarantine.evil; --", 2), (3, "ok", -1), (4, None, 4)])
    path = tmp_path / "evil.json"
    path.write_text(json.dumps({"dag_id": "hostile_rows", "start_date": "2025-01-01", "steps": [
        {"id": "extract_evil", "kind": "extract", "source": {"table": "evil", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "evil"}},
        {"id": "check_evil", "kind": "validate", "input": "extract_evil", "on_fail": "drop_rows",
         "quarantine": {"schema": "quarantine", "table": "evil"}, "expectations": [
             {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": evil, "value_set": ["ok", "'"]}},
             {"type": "expect_column_values_to_be_between", "kwargs": {"column": quote, "min_value": 0}}]},
        {"id": "publish_evil", "kind": "publish", "input": "extract_evil", "table": {"schema": "out", "table": "evil"}},
    ]}))
    pipeline = load_definition(path)
    got = run_pipeline(pipeline, window_of_day(pipeline, date(2025, 3, 1)))["check_evil"]["2025-03-01"]
    assert (got["rows"], got["rows_passed"], got["rows_dropped"]) == (4, 2, 2)
    wh = data_home / "warehouse.duckdb"
    assert warehouse_rows(wh, "SELECT id FROM out.evil ORDER BY id") == [(1,), (4,)]  # NULL is missing, not failing
    assert warehouse_rows(wh, "SELECT id, failed_expectations FROM quarantine.evil ORDER BY id") == [
        (2, f"expect_column_values_to_be_in_set({evil})"), (3, f"expect_column_values_to_be_between({quote})")]
