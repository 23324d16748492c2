"""`dagspec validate` warns (and still passes) when a transform reads the history of a table that no definition of
the folder publishes: the first run would fail for want of that table."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dagspec.cli import app


def definition(dag_id: str, steps: list[dict]) -> dict:
    return {"dag_id": dag_id, "start_date": "2025-01-01", "steps": steps}


def extract(staged: str) -> dict:
    return {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
            "target": {"schema": "raw", "table": staged}}


def reader(table: dict) -> dict:
    return definition("reader", [extract("orders_read"), {
        "id": "joined", "kind": "transform", "inputs": ["extract_orders"],
        "query": "SELECT o.* FROM {{ ref('extract_orders') }} AS o JOIN {{ history('" + f"{table['schema']}."
                 f"{table['table']}" + "') }} AS h ON h.order_id = o.order_id",
        "history": [{"table": table}], "target": {"schema": "mart", "table": "joined"}}])


PUBLISHER = definition("publisher", [extract("orders"), {"id": "publish", "kind": "publish", "input": "extract_orders",
                                               "table": {"schema": "Analytics", "table": "Orders"}}])


def validate_with_reader_of(tmp_path, table: dict):
    """`dagspec validate` over a folder of the publisher and a reader of `table`'s history."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    (folder / "publisher.json").write_text(json.dumps(PUBLISHER))
    (folder / "reader.json").write_text(json.dumps(reader(table)))
    return CliRunner().invoke(app, ["validate", "--no-connections", str(folder)])


def test_a_history_table_another_definition_publishes_gets_no_warning(tmp_path):
    result = validate_with_reader_of(tmp_path, {"schema": "analytics", "table": "orders"})
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and "2 valid definition(s), 0 problem(s)" in result.output


def test_a_history_table_nobody_here_publishes_is_a_warning_with_its_path(tmp_path):
    result = validate_with_reader_of(tmp_path, {"schema": "analytics", "table": "ordrs"})
    assert result.exit_code == 0, result.output  # a table another deployment publishes is legitimate
    out = " ".join(result.output.split())
    assert ("warning: definitions/reader.json: $.steps[1].history[0].table: no definition here publishes "
            "analytics.ordrs to warehouse 'dagspec_warehouse'") in out
    assert "2 valid definition(s), 0 problem(s)" in out
