"""The benchmark's DAG folders: the same N realistic 10-step pipelines three ways.

- dagspec: JSON definitions + the loader files `dagspec init` writes (validation on).
- dagfactory: the same pipelines as dag-factory 1.1.0 YAML + its load_yaml_dags() loader.
- plain: the same JSON read with json.load and built with airflow.sdk directly, no validation:
  the cost of the Airflow objects themselves.
Every variant builds identical DAGs: 10 tasks with the same edges, DAG settings and outlets (the
Assets dagspec declares for each step's outputs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dagspec.dag_files import write_loaders

ROOT = Path(__file__).resolve().parents[1]

CRONS = ["0 0 * * *", "0 3 * * *", "30 1 * * *", "0 6 * * 1", "15 2 1 * *"]


def pipeline(i: int) -> dict:
    """A realistic pipeline: three extracts, three checks, two transforms, two publishes."""
    expect = lambda t, **kw: {"type": t, "kwargs": kw}  # noqa: E731
    return {
        "$schema": "../../include/schema/dagspec.schema.json",
        "version": 1,
        "dag_id": f"shop_{i:04d}",
        "description": f"Orders, customers and items of shop {i}: staged, checked, rolled up, published.",
        "owner": f"team_{i % 7}",
        "tags": ["bench", f"region_{i % 5}"],
        "schedule": CRONS[i % len(CRONS)],
        "start_date": "2025-01-01",
        "catchup": False,
        "retries": 2,
        "retry_delay_minutes": 5,
        "steps": [
            {"id": "extract_orders", "kind": "extract", "description": "Orders of the window.",
             "source": {"conn_id": f"shop_{i}_db", "table": "orders", "incremental_column": "ordered_at"},
             "target": {"schema": f"raw_{i}", "table": "orders"}},
            {"id": "extract_customers", "kind": "extract", "after": [],
             "source": {"conn_id": f"shop_{i}_db", "table": "customers",
                        "columns": ["customer_id", "name", "segment", "created_at"]},
             "target": {"schema": f"raw_{i}", "table": "customers"}},
            {"id": "extract_items", "kind": "extract", "after": [],
             "source": {"conn_id": f"shop_{i}_db",
                        "query": "SELECT * FROM order_items WHERE shipped_at >= :from_date AND shipped_at < :to_date"},
             "target": {"schema": f"raw_{i}", "table": "order_items"}},
            {"id": "check_orders", "kind": "validate", "input": "extract_orders", "expectations": [
                expect("expect_column_values_to_not_be_null", column="order_id"),
                expect("expect_column_values_to_be_unique", column="order_id"),
                expect("expect_column_values_to_be_between", column="amount", min_value=0, max_value=10000),
                expect("expect_column_values_to_be_in_set", column="status",
                       value_set=["placed", "shipped", "delivered", "cancelled", "returned"]),
            ]},
            {"id": "check_customers", "kind": "validate", "input": "extract_customers", "expectations": [
                expect("expect_column_values_to_not_be_null", column="customer_id"),
                expect("expect_column_values_to_be_unique", column="customer_id"),
            ]},
            {"id": "check_items", "kind": "validate", "input": "extract_items", "after": ["extract_items"],
             "expectations": [expect("expect_table_row_count_to_be_between", min_value=0, max_value=10_000_000)]},
            {"id": "daily_revenue", "kind": "transform", "sql": "orders/daily_revenue.sql",
             "after": ["check_orders", "check_items"], "inputs": ["extract_orders"]},
            {"id": "segments", "kind": "transform", "sql": "customers/segments.sql",
             "after": ["check_customers"], "inputs": ["extract_customers", "extract_orders"]},
            {"id": "publish_revenue", "kind": "publish", "input": "daily_revenue",
             "table": {"schema": f"analytics_{i}", "table": "daily_revenue"}, "export": {"format": "parquet"}},
            {"id": "publish_segments", "kind": "publish", "input": "segments", "after": ["segments"],
             "table": {"schema": f"analytics_{i}", "table": "customer_segments"}},
        ],
    }


def edges(p: dict) -> dict[str, list[str]]:
    """The step graph as dagspec draws it (default: the previous step; reads add edges)."""
    out, previous = {}, None
    for s in p["steps"]:
        base = s["after"] if "after" in s else ([previous] if previous else [])
        reads = ([s["input"]] if "input" in s else []) + s.get("inputs", [])
        out[s["id"]] = list(dict.fromkeys([*base, *reads]))
        previous = s["id"]
    return out


PLAIN_LOADER = '''"""Plain loader: JSON -> airflow.sdk DAGs, no validation (the cost of Airflow objects alone)."""
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable


def _noop(**_):
    return None


def _build(p):
    dag = DAG(
        dag_id=p["dag_id"], description=p["description"],
        schedule=CronDataIntervalTimetable(p["schedule"], timezone="UTC"),
        start_date=datetime.fromisoformat(p["start_date"]).replace(tzinfo=timezone.utc),
        catchup=p["catchup"], tags=sorted({"dagspec", *p["tags"]}),
        default_args={"owner": p["owner"], "retries": p["retries"],
                      "retry_delay": timedelta(minutes=p["retry_delay_minutes"])},
    )
    tasks, previous = {}, None
    for s in p["steps"]:
        tasks[s["id"]] = PythonOperator(task_id=s["id"], dag=dag, python_callable=_noop,
                                        op_kwargs={"step_id": s["id"]},
                                        outlets=[Asset(uri=u) for u in s.get("outlets", [])])
    for s in p["steps"]:
        base = s["after"] if "after" in s else ([previous] if previous else [])
        reads = ([s["input"]] if "input" in s else []) + s.get("inputs", [])
        for up in dict.fromkeys([*base, *reads]):
            tasks[up] >> tasks[s["id"]]
        previous = s["id"]
    return dag


for _path in sorted((Path(__file__).parent / "definitions").glob("*.json")):
    _p = json.loads(_path.read_text())
    globals()[_p["dag_id"]] = _build(_p)
'''

DAGFACTORY_LOADER = '''"""dag-factory 1.1.0 loader (airflow dag): every YAML file in yaml/ becomes DAGs."""
from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "yaml"))
'''


def outlet_uris(p: dict) -> dict[str, list[str]]:
    """step id -> the Asset URIs dagspec declares as its outlets, so every variant builds the same DAG."""
    from dagspec.plan import plan_of
    from dagspec.spec.model import Pipeline

    return {s.id: list(s.asset_uris) for s in plan_of(Pipeline.model_validate(p)).steps}


def with_outlets(p: dict) -> dict:
    uris = outlet_uris(p)
    return {**p, "steps": [{**s, "outlets": uris[s["id"]]} for s in p["steps"]]}


def to_yaml_config(p: dict) -> dict:
    deps = edges(p)
    uris = outlet_uris(p)
    return {
        p["dag_id"]: {
            "default_args": {"owner": p["owner"], "retries": p["retries"],
                             "retry_delay_sec": int(p["retry_delay_minutes"] * 60)},
            "description": p["description"],
            "schedule": p["schedule"],
            "start_date": p["start_date"],
            "catchup": p["catchup"],
            "tags": sorted({"dagspec", *p["tags"]}),
            "tasks": [
                {"task_id": s["id"], "operator": "airflow.providers.standard.operators.python.PythonOperator",
                 "python_callable": "builtins.print", "op_kwargs": {"step_id": s["id"]},
                 **({"dependencies": deps[s["id"]]} if deps[s["id"]] else {}),
                 **({"outlets": uris[s["id"]]} if uris[s["id"]] else {})}
                for s in p["steps"]
            ],
        }
    }


def generate(kind: str, n: int, folder: Path) -> Path:
    """Write the DAG folder for one variant and return it."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pipelines = [pipeline(i) for i in range(n)]
    if kind == "dagspec":
        write_loaders(folder)
        (folder / "definitions").mkdir()
        for p in pipelines:
            (folder / "definitions" / f"{p['dag_id']}.json").write_text(json.dumps(p, indent=2))
    elif kind == "plain":
        (folder / "plain_loader.py").write_text(PLAIN_LOADER)
        (folder / "definitions").mkdir()
        for p in pipelines:
            (folder / "definitions" / f"{p['dag_id']}.json").write_text(json.dumps(with_outlets(p), indent=2))
    elif kind == "dagfactory":
        import yaml

        (folder / "dagfactory_loader.py").write_text(DAGFACTORY_LOADER)
        (folder / "yaml").mkdir()
        for p in pipelines:
            (folder / "yaml" / f"{p['dag_id']}.yaml").write_text(yaml.safe_dump(to_yaml_config(p), sort_keys=False))
    else:
        raise ValueError(kind)
    return folder
