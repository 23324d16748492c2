"""Warehouses: where transforms run and published tables live. open_warehouse picks one by connection type;
each implementation is imported only when a connection asks for it (its client library comes with it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagspec.connections import ConnectionInfo, Resolver, env_resolver

if TYPE_CHECKING:
    from dagspec.warehouse.contract import Warehouse


def open_warehouse(info: ConnectionInfo, resolver: Resolver = env_resolver) -> Warehouse:
    """`resolver` finds the connections a warehouse needs beside its own (Redshift's S3 staging)."""
    if info.conn_type == "duckdb":
        from dagspec.warehouse.duckdb import DuckDBWarehouse

        path = info.host or info.extra.get("path")
        if not path:
            raise ValueError(f"warehouse connection {info.conn_id!r} needs the DuckDB file in host or extra.path")
        return DuckDBWarehouse(path)
    if info.conn_type == "ducklake":
        from dagspec.warehouse.ducklake import DuckLakeWarehouse

        return DuckLakeWarehouse(info)
    if info.conn_type in ("postgres", "postgresql", "redshift_pg"):
        from dagspec.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(info)
    if info.conn_type == "redshift":
        from dagspec.warehouse.redshift import RedshiftWarehouse

        return RedshiftWarehouse(info, resolver)
    if info.conn_type in ("bigquery", "google_cloud_platform", "gcpbigquery"):
        from dagspec.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(info)
    raise ValueError(
        f"warehouse connection {info.conn_id!r} has type {info.conn_type!r}; dagspec runs transforms in "
        "'duckdb', 'ducklake', 'postgres', 'redshift' or 'bigquery' warehouses"
    )
