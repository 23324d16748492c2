"""Checks run by Great Expectations itself: its pandas engine (for types dagspec does not compute in
SQL) and its SQL engine on a PostgreSQL warehouse. GX is imported here only, inside the task."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dagspec.spec.suites import Check

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd
    from great_expectations import ExpectationSuite
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.datasource.fluent import SQLDatasource

log = logging.getLogger(__name__)


def _suite(checks: list[Check], name: str) -> ExpectationSuite:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    # Built whole: add_expectation_configuration upserts by domain, so two checks of one column would merge.
    return gx.ExpectationSuite(name=name, expectations=[
        ExpectationConfiguration(type=c.type, kwargs=c.kwargs,
                                 meta={**c.meta, "severity": c.severity, "dagspec_index": c.index}).to_domain_obj()
        for c in checks])


class CheckError(RuntimeError):
    """GX could not compute a check (the database failed, a column is missing, ...): an error of the run, never
    a failed expectation, though GX reports it as one (success false, the exception in exception_info)."""


def raised(result: dict[str, Any]) -> str | None:
    """The message of the exception GX caught while computing one result, or None. exception_info is either
    one {raised_exception, exception_message, ...} or such a dict per metric that failed."""
    info = result.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "").strip()
            return message.splitlines()[0] if message else "an exception without a message"
    return None


def _results(validation: ExpectationSuiteValidationResult, keep_errors: bool = False) -> list[dict[str, Any]]:
    """GX's results in the checks' order. An exception GX caught is a CheckError, unless ``keep_errors`` (a
    comparison with GX's own verdict, where a raised check is an answer too)."""
    out = validation.to_json_dict()["results"]
    errors = [(r["expectation_config"], raised(r)) for r in out if raised(r)]
    if errors and not keep_errors:
        config, message = errors[0]
        column = config["kwargs"].get("column")
        what = f"{config['type']}({column})" if column else config["type"]
        raise CheckError(f"{len(errors)} of {len(out)} expectation(s) could not be computed; {what}: {message}")
    for r in out:
        r["exception_info"] = _one_exception(r["exception_info"])
        r["expectation_config"]["kwargs"].pop("batch_id", None)
        # GX's own severity field mirrors dagspec's (fail = critical, warn = warning).
        r["expectation_config"]["severity"] = "critical" if r["expectation_config"]["meta"].get(
            "severity", "fail") == "fail" else "warning"
        r["expectation_config"]["meta"].pop("dagspec_index", None)
    order = [r.expectation_config.meta["dagspec_index"] for r in validation.results]
    return [r for _, r in sorted(zip(order, out), key=lambda t: t[0])]


def _one_exception(info: dict[str, Any]) -> dict[str, Any]:
    """GX keys an error raised while computing a metric by the metric's id; reports (and the summary in the
    task log) read one {raised_exception, exception_message, exception_traceback}, as dagspec's engine writes."""
    if "raised_exception" in info:
        return info
    raised = [v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    if not raised:
        return {"raised_exception": False, "exception_traceback": None, "exception_message": None}
    return {"raised_exception": True, "exception_traceback": raised[0].get("exception_traceback"),
            "exception_message": raised[0].get("exception_message")}


def _quiet() -> AbstractDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # This logger sets its own INFO level at import, so a WARNING root does not hold back its line per context
    # (the ephemeral docs site's temporary folder), which says nothing about the run.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    # GX passes tqdm disable=False itself, so TQDM_DISABLE does not stop its "Calculating Metrics" bars.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


class PandasBatches:
    """GX's pandas engine, one ephemeral context for many frames (a context costs about half a second)."""

    def __init__(self, name: str = "dagspec"):
        context = _quiet()
        self._definition = (context.data_sources.add_pandas("dagspec").add_dataframe_asset(name)
                            .add_batch_definition_whole_dataframe("batch"))

    def validate(self, df: pd.DataFrame, checks: list[Check], name: str, result_format: str = "SUMMARY",
                 date_columns: tuple[str, ...] | list[str] = (), keep_errors: bool = False) -> list[dict[str, Any]]:
        batch = self._definition.get_batch(batch_parameters={"dataframe": gx_frame(df, date_columns)})
        return _results(batch.validate(_suite(checks, name), result_format=result_format), keep_errors)


def gx_frame(df: pd.DataFrame, date_columns: Iterable[str] = ()) -> pd.DataFrame:
    """The frame as GX's pandas engine reads a batch right: date-times in nanoseconds (GX parses ISO string
    bounds only for datetime64[ns] columns; on the microsecond ones DuckDB and pyarrow give it, it raises a
    TypeError) and DATE columns as dates (DuckDB's fetch_df makes them midnight timestamps, which GX then
    cannot compare with a date bound)."""
    import pandas as pd

    for col in df.columns:
        dtype = df[col].dtype
        if col in date_columns and pd.api.types.is_datetime64_any_dtype(dtype):
            df[col] = pd.Series([None if pd.isna(v) else v.date() for v in df[col]], index=df.index, dtype=object)
        elif pd.api.types.is_datetime64_any_dtype(dtype) and getattr(dtype, "unit", "ns") != "ns":
            try:
                df[col] = df[col].dt.as_unit("ns")
            except (OverflowError, ValueError):  # outside 1677-2262: left as it is
                pass
    return df


def run_pandas(df: pd.DataFrame, checks: list[Check], name: str, date_columns: Iterable[str] = (),
               keep_errors: bool = False) -> list[dict[str, Any]]:
    """GX's pandas engine on a DataFrame (only the columns the checks read are loaded by the caller)."""
    return PandasBatches(name).validate(df, checks, name, date_columns=date_columns, keep_errors=keep_errors)


def run_sql(connection_string: str, query: str, checks: list[Check], name: str) -> list[dict[str, Any]]:
    """GX's SQL engine: metrics are computed by the database, the batch never reaches pandas."""
    context = _quiet()
    source = context.data_sources.add_postgres("dagspec_warehouse", connection_string=connection_string)
    try:
        batch = source.add_query_asset(name, query=query).add_batch_definition_whole_table("batch").get_batch()
        return _results(batch.validate(_suite(checks, name), result_format="SUMMARY"))
    finally:
        # GX keeps its engines (the datasource's and its execution engine's, each with a pool) until garbage
        # collection, which reference cycles delay: one run over 130 dates held 98 of PostgreSQL's 100
        # connections. Both are closed with the step.
        _close_engines(source)


def _close_engines(source: SQLDatasource) -> None:
    for close in (lambda: source.get_execution_engine().close(), lambda: source.get_engine().dispose()):
        try:
            close()
        except Exception as exc:  # closing must not hide the step's own outcome
            log.debug("closing GX's engine failed: %s", type(exc).__name__)
