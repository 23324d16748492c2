"""`dagspec adopt`: give partitions written without manifests (the seed DAG creator's history) a true manifest."""

from __future__ import annotations

from datetime import datetime

import typer

from dagspec.cli.common import cli_resolver
from dagspec.cli.common import plain_err as err
from dagspec.cli.common import plain_out as out
from dagspec.cli.tables import fitting_table


def adopt(
    schema: str = typer.Option(..., "--schema", help="The table's schema (its folder under the store)."),
    table: str = typer.Option(..., "--table", help="The table (its folder under <schema>/)."),
    store_conn: str = typer.Option("dagspec_store", "--store-conn", help="The store's connection id."),
    start: datetime | None = typer.Option(None, "--from", formats=["%Y-%m-%d"], help="First batch_date."),
    end: datetime | None = typer.Option(None, "--to", formats=["%Y-%m-%d"], help="Last batch_date (inclusive)."),
    force: bool = typer.Option(False, "--force", help="Replace a partition's existing manifest."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and report; write nothing."),
) -> None:
    """Write a _manifest.json for each batch_date= folder under <store>/<schema>/<table>/ that has none, from its
    Parquet footers; the files stay in place and dagspec never deletes them. Exit 1 when a partition is refused."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from dagspec.connections import ConnectionNotFound
    from dagspec.store import Store
    from dagspec.store_adopt import Adoption

    try:
        store = Store.from_connection(cli_resolver()(store_conn))
        found = store.found_partitions(schema, table, start and start.date(), end and end.date())
    except ConnectionNotFound:
        err.print(f"no connection {store_conn!r} (fix: define AIRFLOW_CONN_{store_conn.upper()} or pass --store-conn)")
        raise typer.Exit(2) from None
    except (ValueError, OSError) as exc:  # a schema or table that cannot name a folder, a bad connection or store
        err.print(escape(str(exc)))
        raise typer.Exit(2) from None
    where = store.location.uri(f"{store.location.path}/{schema}/{table}")
    if not found:
        out.print(f"no batch_date= folders under {escape(where)}")
        raise typer.Exit(0)
    done = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("adopting", total=len(found))
        for partition in found:
            progress.update(task, description=escape(partition.name))
            try:
                done.append(store.adopt(schema, table, partition, replace=force, dry_run=dry_run))
            except OSError as exc:  # the store itself failed (network, permissions): this partition only
                done.append(Adoption(partition.name, "refused", reason=f"could not read it: {exc}"))
            progress.advance(task)
    report = fitting_table("partition", "outcome", "rows", "why", right=("rows",),
                           title=f"{escape(where)}{' (dry run: nothing written)' if dry_run else ''}")
    for a in done:
        counted = a.outcome in ("adopted", "would adopt")
        report.add_row(escape(a.name), a.outcome, f"{a.rows:,}" if counted else "", escape(a.reason))
    out.print(report)
    count = {k: sum(a.outcome == k for a in done) for k in ("adopted", "would adopt", "skipped", "refused")}
    first = "would adopt" if dry_run else "adopted"
    out.print(f"{first} {count[first]}, skipped {count['skipped']}, refused {count['refused']}; "
              f"rows {sum(a.rows for a in done if a.outcome == first):,}")
    raise typer.Exit(1 if count["refused"] else 0)
