"""History inputs as Airflow sees them: the referenced publish runs first, and a table another DAG publishes is
the transform task's Asset inlet (the same URI as that DAG's outlet)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e
ORDERS_URI = "dagspec-warehouse://dagspec_warehouse/analytics/orders"


def test_history_orders_tasks_and_names_the_published_table_as_inlet(airflow_db, dags_folder):
    from airflow.dag_processing.dagbag import DagBag

    definitions = dags_folder / "definitions"
    (definitions / "customer_orders.json").write_text(json.dumps({
        "dag_id": "customer_orders", "start_date": "2025-01-01", "steps": [
            {"id": "extract_customers", "kind": "extract",
             "source": {"table": "customers", "incremental_column": "signup_date"},
             "target": {"schema": "raw", "table": "customers_h"}},
            {"id": "orders_per_customer", "kind": "transform", "inputs": ["extract_customers"],
             "history": [{"table": {"schema": "analytics", "table": "orders"}, "days": 121}],
             "query": "SELECT c.customer_id, count(o.order_id) AS orders FROM {{ ref('extract_customers') }} AS c "
                      "LEFT JOIN {{ history('analytics.orders') }} AS o ON o.customer_id = c.customer_id "
                      "GROUP BY c.customer_id"},
            {"id": "customer_history", "kind": "transform", "inputs": ["extract_customers"], "after": [],
             "history": [{"step": "publish_customers"}],
             "query": "SELECT count(*) AS n FROM {{ history('publish_customers') }} AS h"},
            {"id": "publish_customers", "kind": "publish", "input": "extract_customers",
             "after": ["extract_customers"], "table": {"schema": "mart", "table": "customers_h"}},
        ]}))
    bag = DagBag(dag_folder=str(dags_folder))
    assert not bag.import_errors
    dag = bag.dags["customer_orders"]
    cross = dag.get_task("orders_per_customer")
    assert [a.uri for a in cross.inlets] == [ORDERS_URI]
    assert ORDERS_URI in [a.uri for a in bag.dags["orders_daily"].get_task("publish_orders").outlets]
    same = dag.get_task("customer_history")
    assert "publish_customers" in same.upstream_task_ids
    assert [a.uri for a in same.inlets] == ["dagspec-warehouse://dagspec_warehouse/mart/customers_h"]
    assert dag.get_task("extract_customers").inlets == []
