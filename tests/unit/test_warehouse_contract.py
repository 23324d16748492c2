"""Every warehouse session offers every operation of the Session contract (warehouse/contract.py), with the
contract's parameters: callers never ask a session what it can do."""

from __future__ import annotations

import inspect

import pytest

from dagspec.warehouse.bigquery import BigQuerySession
from dagspec.warehouse.contract import Session
from dagspec.warehouse.duckdb import DuckDBSession
from dagspec.warehouse.ducklake import DuckLakeSession
from dagspec.warehouse.postgres import PostgresSession
from dagspec.warehouse.redshift import RedshiftSession

OPERATIONS = sorted(name for name, member in vars(Session).items() if callable(member) and not name.startswith("_"))


def test_the_contract_names_the_operations():
    assert {"expose", "replace_batch", "merge_batch", "replace_table", "create_view", "arrow",
            "drop_schema"} <= set(OPERATIONS)


@pytest.mark.parametrize("session", [DuckDBSession, DuckLakeSession, PostgresSession, RedshiftSession,
                                     BigQuerySession])
def test_each_session_implements_every_operation_with_its_parameters(session):
    for name in OPERATIONS:
        implemented = getattr(session, name, None)
        assert callable(implemented), f"{session.__name__} lacks {name}"
        wanted = list(inspect.signature(getattr(Session, name)).parameters)
        assert list(inspect.signature(implemented).parameters)[:len(wanted)] == wanted, (session.__name__, name)
    assert isinstance(session.dialect, str)
    assert isinstance(session.loads_chunks, bool)  # declared by every session, never probed with getattr
    if session.loads_chunks:
        assert callable(getattr(session, "replace_batches", None)), session.__name__
