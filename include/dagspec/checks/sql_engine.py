"""Great Expectations checks computed by DuckDB, results in GX's own result format (SUMMARY).

GX's SQL engine cannot run on DuckDB (through duckdb_engine a metric bundle query returns no rows)
and its pandas engine loads the whole batch in memory. Here the common expectations become one
aggregate scan (plus one GROUP BY per uniqueness check) over Parquet or a warehouse table, so memory
stays flat whatever the batch size. Semantics follow GX's pandas engine on the frame dagspec would
give it (tests/unit/test_gx_differential.py holds them to it): nulls and NaN are "missing" and not
unexpected (except for the null checks), `mostly` is the share of non-missing values that must pass,
bounds and value sets compare as pandas compares them; what this module cannot compute exactly
(`handles` says False) goes to GX itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Protocol

import duckdb

from dagspec.checks.bounds import CheckError, bound, comparable, comparable_values, zoned
from dagspec.checks.gx_results import bound_error, gx_result, in_range, observed, percent
from dagspec.checks.re2 import re2_pattern
from dagspec.spec.expectation_args import is_parameter, iso_value
from dagspec.spec.suites import Check

PARTIAL = 20


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _between(col: str, k: dict, params: list) -> str | None:
    """The 'unexpected' predicate for min/max bounds (GX: inclusive unless strict_min/strict_max)."""
    parts = []
    if k.get("min_value") is not None:
        parts.append(f"{col} {'<=' if k.get('strict_min') else '<'} ?")
        params.append(k["min_value"])
    if k.get("max_value") is not None:
        parts.append(f"{col} {'>=' if k.get('strict_max') else '>'} ?")
        params.append(k["max_value"])
    return " OR ".join(parts) if parts else None


def _in_set(col: str, values: list, params: list, negate: bool) -> str:
    if not values:
        return "TRUE" if not negate else "FALSE"
    params.extend(values)
    test = f"{col} IN ({', '.join('?' for _ in values)})"
    return f"NOT ({test})" if not negate else test


# type -> builder(column sql, kwargs, params) giving the predicate that marks a non-null value unexpected.
_MAP: dict[str, Callable[[str, dict, list], str | None]] = {
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": lambda c, k, p: _in_set(c, list(k.get("value_set") or []), p, False),
    "expect_column_values_to_not_be_in_set": lambda c, k, p: _in_set(c, list(k.get("value_set") or []), p, True),
    "expect_column_value_lengths_to_equal": lambda c, k, p: (p.append(k["value"]), f"length({c}) <> ?")[1],
    "expect_column_value_lengths_to_be_between": lambda c, k, p: _between(f"length({c})", k, p),
    "expect_column_values_to_match_regex": lambda c, k, p: (p.append(k["regex"]), f"NOT regexp_matches({c}, ?)")[1],
    "expect_column_values_to_not_match_regex": lambda c, k, p: (p.append(k["regex"]), f"regexp_matches({c}, ?)")[1],
}
_REGEX = {"expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"}
# Checks of text: on a column of another type GX's pandas engine reads str(value) (a regex) or fails (lengths),
# so those go to GX itself.
_TEXT = _REGEX | {"expect_column_value_lengths_to_equal", "expect_column_value_lengths_to_be_between"}
_NULLS = {"expect_column_values_to_not_be_null": True, "expect_column_values_to_be_null": False}

_AGG = {
    "expect_column_mean_to_be_between": "avg({})",
    "expect_column_min_to_be_between": "min({})",
    "expect_column_max_to_be_between": "max({})",
    "expect_column_sum_to_be_between": "coalesce(sum({}), 0)",  # pandas: the sum of nothing is 0
    "expect_column_median_to_be_between": "median({})",
    "expect_column_stdev_to_be_between": "stddev_samp({})",
    "expect_column_unique_value_count_to_be_between": "count(DISTINCT {})",
}
_DOWN, _UP = 2.0 ** -512, 2.0 ** 512
_UNIQUE = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique",
           "expect_select_column_values_to_be_unique_within_record"}
_TABLE = {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
_COUNTS = {"expect_column_value_lengths_to_be_between", "expect_column_unique_value_count_to_be_between"}

SUPPORTED = set(_MAP) | set(_NULLS) | set(_AGG) | {"expect_column_values_to_be_unique",
                                                   "expect_compound_columns_to_be_unique"} | _TABLE


def supported(check: Check) -> bool:
    if check.type not in SUPPORTED:
        return False
    # Options whose GX meaning is not reproduced here go to GX itself.
    unsupported = {"row_condition", "condition_parser", "parse_strings_as_datetimes", "allow_cross_type_comparisons"}
    if unsupported & {k for k, v in check.kwargs.items() if v}:
        return False
    if check.type == "expect_compound_columns_to_be_unique":
        return check.kwargs.get("ignore_row_if", "all_values_are_missing") == "all_values_are_missing"
    if check.type in _REGEX:
        return re2_pattern(check.kwargs.get("regex")) is not None
    return True


_BIGQUERY_TYPES = {"TIMESTAMP": "TIMESTAMP WITH TIME ZONE", "DATETIME": "TIMESTAMP", "STRING": "VARCHAR",
                   "FLOAT64": "DOUBLE", "FLOAT": "DOUBLE", "INT64": "BIGINT", "INTEGER": "BIGINT",
                   "NUMERIC": "DECIMAL", "BIGNUMERIC": "DECIMAL", "BOOL": "BOOLEAN"}


class SqlConnection(Protocol):
    """What stands in for a DuckDB connection to run the same SQL in a warehouse (checks/warehouse_sql.py)."""

    dialect: str  # the warehouse's, for sqlglot

    def execute(self, sql: str, params: list | tuple | None = None) -> Any: ...


class Evaluator:
    """Runs checks against one relation (a SQL FROM item) on a DuckDB connection or a warehouse's stand-in."""

    def __init__(self, con: duckdb.DuckDBPyConnection | SqlConnection, relation: str):
        self.con = con
        self.relation = relation
        described = con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        self.columns = [r[0] for r in described]
        dialect = "duckdb" if isinstance(con, duckdb.DuckDBPyConnection) else con.dialect
        # Column types in DuckDB's names (BigQuery's TIMESTAMP has a zone, its DATETIME has none).
        names = _BIGQUERY_TYPES if dialect == "bigquery" else {}
        self.types = {r[0]: names.get(str(r[1]).upper(), str(r[1]).upper()) for r in described}
        # NaN is a value to SQL and missing to GX's pandas engine (it is what a NULL float becomes there).
        # PostgreSQL (quarantine after GX's SQL engine) reads the pattern as GX's SQL engine gave it.
        self._re2 = dialect in ("duckdb", "bigquery")
        self._nan = {c for c, t in self.types.items() if t in ("FLOAT", "DOUBLE", "REAL")} if dialect == "duckdb" else set()

    def date_columns(self) -> list[str]:
        return [c for c, t in self.types.items() if t == "DATE"]

    def handles(self, check: Check) -> bool:
        """Whether this evaluator gives GX's verdict for the check on this relation (else GX computes it)."""
        if not supported(check):
            return False
        col = check.kwargs.get("column")
        return not (check.type in _TEXT and col in self.types and self.types[col] not in ("VARCHAR", "STRING"))

    def _scalar(self, sql: str, params: list | None = None) -> Any:
        return self.con.execute(sql, params or []).fetchone()[0]

    def missing(self, name: str) -> str:
        col = _q(name)
        return f"({col} IS NULL OR isnan({col}))" if name in self._nan else f"{col} IS NULL"

    def _kwargs(self, check: Check) -> dict:
        """The check's kwargs with min_value/max_value as values to compare (CheckError if GX cannot)."""
        k = dict(check.kwargs)
        counts = check.type in _TABLE or check.type in _COUNTS
        kind = "BIGINT" if counts else self.types.get(k.get("column"), "")
        for key in ("min_value", "max_value"):
            if key in k:
                k[key] = bound(k[key], kind, key)
        if check.type in _REGEX and self._re2:
            k["regex"] = re2_pattern(k["regex"])
        if isinstance(k.get("value_set"), list):
            k["value_set"] = comparable_values(k["value_set"], kind)
        return k

    def unexpected_predicate(self, check: Check) -> tuple[str, list] | None:
        """SQL that is true for a row this check counts as unexpected (None for table/aggregate checks)."""
        k, params = self._kwargs(check), []
        if check.type in _NULLS:
            pred = self.missing(k["column"])
            return (pred if _NULLS[check.type] else f"NOT {pred}"), params
        if check.type in _MAP:
            col = _q(k["column"])
            pred = _MAP[check.type](col, k, params)
            return (f"NOT {self.missing(k['column'])} AND ({pred})" if pred else "FALSE"), params
        if check.type == "expect_column_values_to_be_unique":
            col = _q(k["column"])
            return (f"{col} IN (SELECT {col} FROM {self.relation} WHERE NOT {self.missing(k['column'])} "
                    f"GROUP BY {col} HAVING count(*) > 1)"), params
        if check.type == "expect_compound_columns_to_be_unique":
            cols = ", ".join(_q(c) for c in k["column_list"])
            return (f"({cols}) IN (SELECT ({cols}) FROM {self.relation} GROUP BY {cols} HAVING count(*) > 1) "
                    f"AND NOT ({' AND '.join(self.missing(c) for c in k['column_list'])})"), params
        return None

    def _problem(self, c: Check) -> str | None:
        """Why the check cannot be computed as written (reported on its result, as GX reports its errors)."""
        absent = [col for col in (c.columns() or []) if col not in self.columns]
        if absent:
            return f"column(s) {', '.join(absent)} not found; the batch has: {', '.join(self.columns)}"
        params = [f"{key}={v}" for key, v in c.kwargs.items() if is_parameter(v)]
        if params:
            return (f"suite parameter(s) {', '.join(params)} are not supported: dagspec passes no parameter values "
                    "to Great Expectations; write the values themselves")
        return None

    def _as_gx_sees(self, c: Check) -> str:
        """The aggregated column as GX's pandas engine holds it: NaN missing, DECIMAL as float (its median is
        the midpoint, not rounded to the column's scale)."""
        name = c.kwargs["column"]
        col = _q(name)
        if name in self._nan:
            return f"CASE WHEN isnan({col}) THEN NULL ELSE {col} END"
        if self.types.get(name, "").startswith("DECIMAL") and c.type != "expect_column_unique_value_count_to_be_between":
            return f"CAST({col} AS DOUBLE)"
        return col

    def _bound_problem(self, c: Check) -> str | None:
        """Bounds GX cannot compare with the column: GX raises only once it has values to compare, so this is
        reported after the scan (a batch with no values of the column passes as it does in GX)."""
        if c.type in _AGG:
            return None  # read once its value is known (see _aggregate_result)
        try:
            self._kwargs(c)
        except CheckError as exc:
            return str(exc)
        return None

    def _aggregate_result(self, c: Check, value: Any) -> dict[str, Any]:
        if value is None and self.types.get(c.kwargs["column"], "").startswith("TIMESTAMP"):
            # GX's aggregate of no timestamps is NaT: no bound is met, none is refused but a date-only one.
            given = [c.kwargs.get(key) for key in ("min_value", "max_value") if c.kwargs.get(key) is not None]
            for key in ("min_value", "max_value"):
                if type(iso_value(c.kwargs.get(key))) is dt.date:
                    return gx_result(c, False, {}, bound_error(c.kwargs[key], self.types[c.kwargs["column"]], key))
            return gx_result(c, not given, {"observed_value": "NaT"})
        if value is None:  # GX: no value, no verdict to compute (and no bound looked at)
            return gx_result(c, False, {"observed_value": None})
        try:
            k = self._kwargs(c)
        except CheckError as exc:
            return gx_result(c, False, {}, str(exc))
        return gx_result(c, in_range(comparable(value), k), {"observed_value": observed(comparable(value))})

    def run(self, checks: list[Check]) -> list[dict[str, Any]]:
        problems = {c.index: p for c in checks if (p := self._problem(c)) is not None}
        deferred = {}
        for c in checks:
            if c.index not in problems and (p := self._bound_problem(c)):
                # pandas refuses a naive bound against a zoned column even when it holds no values: so does GX.
                (problems if zoned(self.types.get(c.kwargs.get("column"), "")) else deferred)[c.index] = p

        # One scan for every count and aggregate.
        select, params, slots = ["count(*)"], [], {}
        stdevs: dict[int, str] = {}  # select position -> column, of each standard deviation
        for c in checks:
            if c.index in problems:
                continue
            k = c.kwargs
            if c.index in deferred:
                slots[c.index] = len(select)
                select += ["0", f"count(*) FILTER (WHERE {self.missing(k['column'])})"]
            elif c.type in _NULLS or c.type in _MAP:
                pred, p = self.unexpected_predicate(c)
                slots[c.index] = len(select)
                select.append(f"count(*) FILTER (WHERE {pred})")
                params += p
                select.append(f"count(*) FILTER (WHERE {self.missing(k['column'])})")
            elif c.type in _AGG:
                slots[c.index] = len(select)
                select.append(_AGG[c.type].format(self._as_gx_sees(c)))
                if c.type == "expect_column_stdev_to_be_between":
                    stdevs[len(select) - 1] = self._as_gx_sees(c)
            elif c.type == "expect_column_values_to_be_unique":
                slots[c.index] = len(select)
                select.append(f"count(*) FILTER (WHERE {self.missing(k['column'])})")
            elif c.type == "expect_compound_columns_to_be_unique":
                slots[c.index] = len(select)
                select.append(f"count(*) FILTER (WHERE {' AND '.join(self.missing(x) for x in k['column_list'])})")
        try:
            row = self.con.execute(f"SELECT {', '.join(select)} FROM {self.relation}", params).fetchone()
        except duckdb.OutOfRangeException:
            if not stdevs:
                raise
            # DuckDB refuses a standard deviation past the largest DOUBLE where pandas (so GX) gives inf: the sum
            # of squares is taken over values scaled by a power of two (exact), and overflows to inf as pandas' does.
            # It refuses an infinite value too, where pandas gives NaN (inf - inf): no inf reaches var_samp.
            for i, col in stdevs.items():
                finite = f"CASE WHEN isinf(({col})::DOUBLE) THEN 0 ELSE ({col}) * {_DOWN!r} END"
                select[i] = (f"CASE WHEN count(*) FILTER (WHERE isinf(({col})::DOUBLE)) > 0 THEN 'nan'::DOUBLE ELSE "
                             f"sqrt(var_samp({finite}) * (count({col}) - 1) * {_UP!r} * {_UP!r} / (count({col}) - 1)) END")
            row = self.con.execute(f"SELECT {', '.join(select)} FROM {self.relation}", params).fetchone()
        n = row[0]

        out = []
        for c in checks:
            if c.index in problems:
                out.append(gx_result(c, False, {}, problems[c.index]))
                continue
            if c.type in _AGG:
                out.append(self._aggregate_result(c, row[slots[c.index]]))
                continue
            if c.index in deferred:
                nonmissing = n - row[slots[c.index] + 1]
                out.append(self._map_result(c, n, 0, row[slots[c.index] + 1]) if nonmissing == 0 else
                           gx_result(c, False, {}, deferred[c.index]))
                continue
            k = self._kwargs(c)
            if c.type == "expect_table_row_count_to_be_between":
                out.append(gx_result(c, in_range(n, k), {"observed_value": n}))
            elif c.type == "expect_table_row_count_to_equal":
                out.append(gx_result(c, n == k.get("value"), {"observed_value": n}))
            elif c.type in _NULLS:
                unexpected = row[slots[c.index]]
                out.append(self._map_result(c, n, unexpected, None))
            elif c.type in _MAP:
                unexpected, missing = row[slots[c.index]], row[slots[c.index] + 1]
                out.append(self._map_result(c, n, unexpected, missing))
            else:  # uniqueness: one GROUP BY, spilled to disk by DuckDB when it outgrows memory
                missing = row[slots[c.index]]
                cols = [k["column"]] if "column" in k else list(k["column_list"])
                keys = ", ".join(_q(x) for x in cols)
                not_all_null = " OR ".join(f"NOT {self.missing(x)}" for x in cols)
                unexpected = self._scalar(
                    f"SELECT coalesce(sum(c), 0) FROM (SELECT count(*) AS c FROM {self.relation} "
                    f"WHERE {not_all_null} GROUP BY {keys} HAVING count(*) > 1)") if n else 0
                out.append(self._map_result(c, n, int(unexpected), missing))
        return out

    def _map_result(self, c: Check, n: int, unexpected: int, missing: int | None) -> dict[str, Any]:
        nonmissing = n if missing is None else n - missing
        mostly = c.kwargs["mostly"] if c.kwargs.get("mostly") is not None else 1
        # GX's own float arithmetic (no tolerance: a tolerance passes checks GX fails).
        success = nonmissing == 0 or (float(nonmissing) - float(unexpected)) / float(nonmissing) >= mostly
        res: dict[str, Any] = {"element_count": n, "unexpected_count": unexpected,
                               "unexpected_percent": percent(unexpected, nonmissing)}
        partial, counts = self._samples(c) if unexpected else ([], [])
        res["partial_unexpected_list"] = partial
        if missing is not None:
            res.update(missing_count=missing, missing_percent=percent(missing, n),
                       unexpected_percent_total=percent(unexpected, n),
                       unexpected_percent_nonmissing=percent(unexpected, nonmissing))
        res["partial_unexpected_counts"] = counts
        return gx_result(c, success, res)

    def _samples(self, c: Check) -> tuple[list, list]:
        pred, params = self.unexpected_predicate(c)
        if c.type == "expect_compound_columns_to_be_unique":
            cols = list(c.kwargs["column_list"])
            rows = self.con.execute(f"SELECT {', '.join(_q(x) for x in cols)} FROM {self.relation} WHERE {pred} "
                                    f"LIMIT {PARTIAL}", params).fetchall()
            return [{col: observed(v) for col, v in zip(cols, r)} for r in rows], []
        col = _q(c.kwargs["column"])
        values = [observed(r[0]) for r in self.con.execute(
            f"SELECT {col} FROM {self.relation} WHERE {pred} LIMIT {PARTIAL}", params).fetchall()]
        counts = [{"value": observed(v), "count": n} for v, n in self.con.execute(
            f"SELECT {col}, count(*) AS n FROM {self.relation} WHERE {pred} GROUP BY {col} "
            f"ORDER BY n DESC, {col} NULLS FIRST LIMIT {PARTIAL}", params).fetchall()]
        return values, counts

    def failing_rows_sql(self, checks_and_results: list[tuple[Check, dict]]) -> tuple[str, list] | None:
        """SELECT of the rows that failed row-level checks, with the names of the checks they failed."""
        preds = []
        for c, r in checks_and_results:
            if r["success"] or r["exception_info"]["raised_exception"]:
                continue
            got = self.unexpected_predicate(c)
            if got is not None:
                preds.append((c, *got))
        if not preds:
            return None
        params: list = []
        labels = []
        for c, pred, p in preds:
            col = c.kwargs.get("column") or ",".join(c.kwargs.get("column_list") or [])
            labels.append(f"CASE WHEN {pred} THEN CAST(? AS VARCHAR) END")
            params += p + [f"{c.type}({col})"]
        where = " OR ".join(f"({pred})" for _, pred, _ in preds)
        for _, _, p in preds:
            params += p
        return (f"SELECT *, concat_ws('; ', {', '.join(labels)}) AS failed_expectations "
                f"FROM {self.relation} WHERE {where}", params)
