"""A definition's steps whose transform counts the orders it sees through a history input: what each warehouse's
history test runs (staged orders, published to `<schema>.orders`, counted per batch)."""

from __future__ import annotations


def counting_history(schema: str = "mart", days: int | None = None, alias: str = " AS o",
                     target: dict | None = None) -> list[dict]:
    history = {"step": "publish_orders", **({"days": days} if days is not None else {})}
    seen = {"id": "seen", "kind": "transform", "history": [history],
            "query": "SELECT count(*) AS orders_seen FROM {{ history('publish_orders') }}" + alias}
    return [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders", "incremental_column": "ordered_at"},
         "target": {"schema": "raw", "table": "orders"}},
        {"id": "publish_orders", "kind": "publish", "input": "extract_orders",
         "table": {"schema": schema, "table": "orders"}},
        {**seen, **({"target": target} if target else {})},
    ]
