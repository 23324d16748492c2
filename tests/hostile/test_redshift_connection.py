"""A `redshift` connection's extra is user input: only the listed redshift_connector settings pass on, so an extra
cannot make the driver import a class (credentials_provider) or talk to a socket file (unix_sock); a post-load
statement carrying a second statement is refused before the load."""

from __future__ import annotations

from dagspec.connections import ConnectionInfo
from dagspec.warehouse.redshift_driver import connector_kwargs
from dagspec.warehouse.redshift_sql import redshift_problem


def test_only_listed_driver_settings_reach_redshift_connector():
    info = ConnectionInfo("rs_h15", "redshift", "h", None, "u", "p", "dev", {
        "driver": "redshift_connector", "credentials_provider": "os.system", "unix_sock": "/tmp/x.sock",
        "idp_host": "evil.example", "iam": True})
    got = connector_kwargs(info, 5439)
    assert {"credentials_provider", "unix_sock", "idp_host", "driver"}.isdisjoint(got) and got["iam"] is True


def test_a_post_load_statement_with_a_second_one_is_refused():
    assert "2 statements" in redshift_problem('GRANT SELECT ON "m"."t" TO r; DROP TABLE "m"."t"')
    assert "2 statements" in redshift_problem("COMMENT ON TABLE \"m\".\"t\" IS 'x'; DELETE FROM \"m\".\"t\"")
