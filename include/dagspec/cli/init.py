"""`dagspec init DAGS_FOLDER`: the loader files Airflow parses, and a definitions folder with an example."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dagspec.cli.common import plain_out as out

EXAMPLE = {
    "dag_id": "example_orders",
    "description": "An example: the window's orders from the sample source, checked, published to the warehouse.",
    "schedule": "@daily",
    "start_date": "2025-01-01",
    "steps": [
        {"id": "extract_orders", "kind": "extract",
         "source": {"conn_id": "dagspec_source", "table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "example_raw", "table": "orders"}},
        {"id": "check_orders", "kind": "validate", "input": "extract_orders",
         "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}]},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
         "table": {"schema": "example", "table": "orders"}},
    ],
}


def init(
    dags_folder: Path = typer.Argument(..., help="Airflow's DAGs folder (or a bundle's folder)."),
    shares: int = typer.Option(None, "--shares", min=1, max=256,
                               help="Loader files; each builds the definitions whose file name hashes to it "
                                    "(default 16: about 1,250 definitions each at 20,000)."),
    example: bool = typer.Option(True, "--example/--no-example", help="Write an example definition into an "
                                 "empty definitions folder."),
) -> None:
    """Write the loader files and a definitions/ folder; re-run with another --shares to re-split."""
    from dagspec.dag_files import DEFAULT_SHARES, write_loaders

    written = write_loaders(dags_folder, shares or DEFAULT_SHARES)
    definitions = dags_folder / "definitions"
    definitions.mkdir(exist_ok=True)
    out.print(f"{len(written)} loader file(s) in {dags_folder}; definitions go in {definitions}")
    if example and not any(definitions.glob("*.json")):
        (definitions / "example_orders.json").write_text(json.dumps(EXAMPLE, indent=2) + "\n")
        out.print(f"example: {definitions / 'example_orders.json'} (its data: `dagspec sample-data`)")
