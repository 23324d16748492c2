"""The plan: run order, what each step waits for and reads, where it writes, which outputs are Assets."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dagspec.plan import STEP_KINDS, plan_of
from dagspec.spec.graph import upstream
from dagspec.spec.load import load_definition
from dagspec.spec.model import Pipeline
from dagspec.spec.outputs import WORK_SCHEMA, work_table_name
from dagspec.stages.context import RunContext, StepFailed
from dagspec.windows import Window

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = sorted([*(ROOT / "dags/definitions").glob("*.json"), *(ROOT / "tests/definitions/good").glob("*.json")])
WINDOW = Window(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC))


def pipeline(steps: list[dict], **extra) -> Pipeline:
    return Pipeline.model_validate({"dag_id": "p", "start_date": "2025-01-01", "steps": steps, **extra})


EXTRACT = {"id": "e", "kind": "extract", "source": {"table": "orders"}, "target": {"schema": "raw", "table": "orders"}}


def test_orders_daily_plan():
    plan = plan_of(load_definition(ROOT / "dags/definitions/orders_daily.json"))
    assert plan.dag_id == "orders_daily"
    assert plan.order == ["extract_orders", "check_orders", "publish_orders", "daily_revenue", "publish_revenue"]
    revenue = plan.step("daily_revenue")
    assert (revenue.kind, revenue.upstream, revenue.reads) == ("transform", ("check_orders", "extract_orders"),
                                                              ("extract_orders",))
    assert revenue.output.qualified == "dagspec_work.orders_daily__daily_revenue" and not revenue.output_in_store
    assert revenue.asset_uris == ("dagspec-warehouse://dagspec_warehouse/dagspec_work/orders_daily__daily_revenue",)
    assert plan.step("publish_revenue").asset_uris == (
        "dagspec-warehouse://dagspec_warehouse/analytics/daily_revenue",
        "dagspec-store://dagspec_store/analytics/daily_revenue")
    assert plan.step("extract_orders").output.qualified == "raw.orders" and plan.step("extract_orders").output_in_store
    assert plan.step("extract_orders").asset_uris == plan.step("check_orders").asset_uris == ()
    assert plan.store_tables() == [("raw", "orders"), ("analytics", "daily_revenue")]
    assert plan.validations_of("extract_orders") == ["check_orders"]
    assert plan.ancestors("publish_revenue") == {"daily_revenue", "check_orders", "extract_orders"}
    assert not plan.has_ml


def test_model_plan_scores_to_a_table_and_the_store():
    plan = plan_of(load_definition(ROOT / "dags/definitions/orders_model.json"))
    score = plan.step("score_orders")
    assert score.is_ml and plan.has_ml and {"drift", "score"} <= plan.kinds
    assert score.output.qualified == "ml.order_scores" and not score.output_in_store
    assert [(w.namespace, w.what, w.schema, w.table) for w in score.writes] == [
        ("warehouse", "score table", "ml", "order_scores"), ("store", "exported scores", "ml", "order_scores")]
    assert score.asset_uris == ()
    assert plan.store_tables() == [("ml", "orders"), ("ml", "customers")]  # exported scores are not counted
    assert plan.models_trained == () and [s.id for s in plan.retrain_signals] == ["drift_check"]
    retrain = plan_of(load_definition(ROOT / "dags/definitions/orders_model_retrain.json"))
    assert retrain.models_trained == ("orders_lost",) and retrain.retrain_signals == ()


def test_every_kind_has_an_icon_on_its_task():
    from dagspec.airflow.build import KIND_ICONS

    assert sorted(KIND_ICONS) == sorted(STEP_KINDS)


def test_run_order_follows_after_not_the_listing():
    plan = plan_of(pipeline([
        {"id": "t", "kind": "transform", "sql": "x.sql", "inputs": ["e"], "after": ["e"]},
        {**EXTRACT, "after": []},
    ]))
    assert plan.order == ["e", "t"]
    assert list(plan.upstream()) == ["t", "e"]  # definition order


def test_every_publish_target_is_an_asset_and_a_sheet_is_quoted():
    plan = plan_of(pipeline([EXTRACT, {
        "id": "pub", "kind": "publish", "input": "e", "table": {"schema": "a", "table": "t"},
        "export": {"format": "csv", "conn_id": "lake", "target": {"schema": "x", "table": "t"}},
        "bigquery": {"conn_id": "bq", "dataset": "mart", "table": "t"},
        "sheet": {"conn_id": "sheets", "spreadsheet_id": "sheet_0123456789", "worksheet": "Daily revenue"}}]))
    assert plan.step("pub").asset_uris == ("dagspec-warehouse://dagspec_warehouse/a/t", "dagspec-store://lake/x/t",
                                           "bigquery://bq/mart/t", "gsheets://sheet_0123456789/Daily%20revenue")
    assert plan.step("pub").output is None
    assert plan.store_tables() == [("raw", "orders"), ("x", "t")]


def test_quarantine_is_written_but_not_an_asset():
    plan = plan_of(pipeline([EXTRACT, {"id": "v", "kind": "validate", "input": "e", "quarantine": {
        "schema": "q", "table": "orders"}, "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "id"}}]}]))
    (place,) = plan.step("v").writes
    assert (place.namespace, place.schema, place.table, place.asset) == ("warehouse", "q", "orders", False)


def test_work_table_names():
    assert WORK_SCHEMA == "dagspec_work"
    assert work_table_name("a.b-c", "s") == "a_b_c__s"
    assert work_table_name("1x", "s") == "_1x__s"
    assert len(work_table_name("d" * 80, "s")) == 63


def test_unknown_step_is_a_key_error():
    with pytest.raises(KeyError):
        plan_of(pipeline([EXTRACT])).step("nope")


def test_every_kind_of_the_model_is_listed_once():
    from dagspec.spec.model import Pipeline as P

    step_union = P.model_fields["steps"].annotation.__args__[0]
    kinds = {t.model_fields["kind"].annotation.__args__[0] for t in _members(step_union)}
    assert sorted(kinds) == sorted(STEP_KINDS) and len(set(STEP_KINDS)) == len(STEP_KINDS)


def _members(union) -> list[type]:
    import typing

    args = typing.get_args(union)
    found = []
    for arg in args:
        found.extend(_members(arg) if typing.get_args(arg) else [arg] if isinstance(arg, type) else [])
    return found


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_plan_is_what_the_stages_and_the_dag_use(path):
    from dagspec.airflow.build import build_dag
    from dagspec.spec.outputs import writes

    definition = load_definition(path)
    plan = plan_of(definition)
    ctx = RunContext(definition, WINDOW)
    position = {s: i for i, s in enumerate(plan.order)}
    assert sorted(plan.order) == sorted(s.id for s in definition.steps)
    for step_id, deps in upstream(definition).items():
        assert plan.step(step_id).upstream == tuple(deps)
        assert all(position[d] < position[step_id] for d in deps)
    for planned in plan.steps:
        if planned.output is None:
            with pytest.raises(StepFailed, match="has no output to read"):
                ctx.output_table(planned.id)
        else:
            assert ctx.output_table(planned.id) == planned.output
        for read in planned.reads:
            assert read in planned.upstream
    assert [o.loc[:2] for o in writes(definition)] == [
        ("steps", i) for i, s in enumerate(definition.steps) for w in plan.step(s.id).writes if w.namespace != "gsheets"]
    from dagspec.airflow.lookback import LOOKBACK_TASK

    dag = build_dag(definition, path)  # a model pipeline's DAG adds its retrain tasks: airflow/ml.py
    for planned in plan.steps:
        task = dag.get_task(planned.id)
        # With a lookback (orders_model's), the first steps also wait for the task that finds the gaps.
        first = {LOOKBACK_TASK} if definition.lookback and not planned.upstream else set()
        assert ([a.uri for a in task.outlets], task.upstream_task_ids) == (list(planned.asset_uris),
                                                                          set(planned.upstream) | first)
