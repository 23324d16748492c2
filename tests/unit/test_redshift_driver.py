"""A `redshift` connection's driver: psycopg by default, Amazon's redshift_connector when extra.driver says so.
No cluster can be reached here: what runs is the argument building, the secrets kept out of errors, a real
connection attempt by redshift_connector to a closed port, and that neither driver goes to PostgreSQL's code."""

from __future__ import annotations

import socket

import pytest

from dagspec.connections import ConnectionInfo
from dagspec.warehouse import open_warehouse
from dagspec.warehouse.redshift import RedshiftWarehouse
from dagspec.warehouse.redshift_driver import ConnectorConnection, connector_kwargs, driver_of

STAGING = ConnectionInfo("rs_stage_l15", "aws", login="AKIAL15", password="stage-secret-l15",
                         extra={"path": "s3://bucket/prefix"})


def resolver(conn_id: str) -> ConnectionInfo:
    assert conn_id == "rs_stage_l15"
    return STAGING


def info(**extra) -> ConnectionInfo:
    return ConnectionInfo("rs_l15", "redshift", "cluster.example.com", None, "etl", "pw-l15-s3cr3t", "dev",
                          {"staging_conn_id": "rs_stage_l15", **extra})


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_driver_is_psycopg_unless_the_connection_names_redshift_connector():
    assert driver_of(info()) == "psycopg"
    assert driver_of(info(driver="redshift_connector")) == "redshift_connector"
    with pytest.raises(ValueError, match=r"extra.driver is 'pg8000'; use one of psycopg, redshift_connector"):
        open_warehouse(info(driver="pg8000"), resolver)


def test_redshift_connector_gets_the_connection_and_its_iam_settings():
    got = connector_kwargs(info(driver="redshift_connector", iam=True, cluster_identifier="etl-cluster",
                                region="eu-west-1", db_user="etl", connect_timeout="7", ignored="x"), 5439)
    assert got == {"host": "cluster.example.com", "port": 5439, "user": "etl", "password": "pw-l15-s3cr3t",
                   "database": "dev", "application_name": "dagspec", "timeout": 7, "iam": True,
                   "cluster_identifier": "etl-cluster", "region": "eu-west-1", "db_user": "etl"}


def test_a_failed_redshift_connector_sign_in_names_the_connection_and_hides_the_password(monkeypatch):
    import psycopg

    def no_psycopg(*args, **kwargs):
        raise AssertionError("a redshift_connector connection reached psycopg")

    monkeypatch.setattr(psycopg, "connect", no_psycopg)
    wh = RedshiftWarehouse(ConnectionInfo("rs_l15", "redshift", "127.0.0.1", closed_port(), "etl", "pw-l15-s3cr3t",
                                          "dev", {"staging_conn_id": "rs_stage_l15", "driver": "redshift_connector",
                                                  "connect_timeout": "3"}), resolver)
    with pytest.raises(ConnectionError) as failed:
        wh.connect()
    message = str(failed.value)
    assert "warehouse connection 'rs_l15' (redshift, redshift_connector)" in message
    assert "pw-l15-s3cr3t" not in message and "stage-secret-l15" not in message


def test_psycopg_stays_the_default_path_and_hides_the_password_too():
    wh = RedshiftWarehouse(ConnectionInfo("rs_l15", "redshift", "127.0.0.1", closed_port(), "etl", "pw-l15-s3cr3t",
                                          "dev", {"staging_conn_id": "rs_stage_l15", "connect_timeout": "3"}), resolver)
    with pytest.raises(ConnectionError) as failed:
        wh.connect()
    assert "'rs_l15' (redshift)" in str(failed.value) and "pw-l15-s3cr3t" not in str(failed.value)


class FakeDriverConnection:
    """redshift_connector's connection surface the adapter uses, recording what it is asked."""

    def __init__(self):
        self.autocommit, self.calls = True, []

    def commit(self):
        self.calls.append(("commit", self.autocommit))

    def rollback(self):
        self.calls.append(("rollback", self.autocommit))


def test_a_transaction_is_one_block_and_a_nested_one_joins_it():
    raw = FakeDriverConnection()
    con = ConnectorConnection(raw)
    with con.transaction():
        assert raw.autocommit is False
        with con.transaction():
            pass
        assert raw.calls == []  # no savepoint, no early commit: Redshift has no savepoints
    assert raw.calls == [("commit", False)] and raw.autocommit is True
    with pytest.raises(RuntimeError), con.transaction():
        raise RuntimeError("load failed")
    assert raw.calls[-1] == ("rollback", False) and raw.autocommit is True
