"""What every warehouse offers the stages, and the errors they share."""

from __future__ import annotations

from dagspec.connections import ConnectionInfo


class SchemaDrift(ValueError):
    def __init__(self, table: str, changes: list[str]):
        super().__init__(
            f"the result no longer matches table {table}: {'; '.join(changes)}. "
            "Fix the SQL, or drop/migrate the table on purpose (dagspec never changes a table's columns silently)"
        )


def columns_diff(existing: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> list[str]:
    have, want = dict(existing), dict(wanted)
    changes = [f"new column {c} {t}" for c, t in want.items() if c not in have]
    changes += [f"missing column {c}" for c in have if c not in want]
    changes += [f"column {c} is {have[c]}, result gives {t}" for c, t in want.items() if c in have and have[c] != t]
    return changes


def open_warehouse(info: ConnectionInfo):
    if info.conn_type == "duckdb":
        from dagspec.warehouse.duckdb import DuckDBWarehouse

        path = info.host or info.extra.get("path")
        if not path:
            raise ValueError(f"warehouse connection {info.conn_id!r} needs the DuckDB file in host or extra.path")
        return DuckDBWarehouse(path)
    if info.conn_type in ("postgres", "postgresql", "redshift_pg"):
        from dagspec.warehouse.postgres import PostgresWarehouse

        return PostgresWarehouse(info)
    if info.conn_type in ("bigquery", "google_cloud_platform", "gcpbigquery"):
        from dagspec.warehouse.bigquery import BigQueryWarehouse

        return BigQueryWarehouse(info)
    raise ValueError(
        f"warehouse connection {info.conn_id!r} has type {info.conn_type!r}; dagspec runs transforms in "
        "'duckdb', 'postgres' or 'bigquery' warehouses"
    )
