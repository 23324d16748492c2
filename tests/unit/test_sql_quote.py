"""quote() writes PostgreSQL's and DuckDB's identifiers itself (no sqlglot import): the same text sqlglot writes."""

from __future__ import annotations

import pytest
from sqlglot import exp

from dagspec.sql import quote


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "mysql", "bigquery", "snowflake"])
@pytest.mark.parametrize("name", ["a", "Name_1", "_x", "select", "ORDER", "l_shipdate", "x" * 63])
def test_quote_matches_sqlglot(dialect, name):
    assert quote(name, dialect) == exp.to_identifier(name, quoted=True).sql(dialect=dialect)


@pytest.mark.parametrize("name", ['a"; DROP TABLE t; --', "a b", "", "1a", "x" * 64, 'q"'])
def test_a_name_that_is_not_plain_is_refused_before_any_quoting(name):
    with pytest.raises(ValueError, match="not a plain identifier"):
        quote(name, "postgres")
