"""Hostile definitions: files, names and shapes nobody on the team wrote must cost only themselves.

Each test here failed before its fix: parser bombs escaping load_definition, a file name run as Python
by the error stub, duplicate keys, self-dependencies and a cubic step order, colliding dag_ids,
two definitions owning one table, absurd numbers.
"""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagspec.spec import DefinitionError
from dagspec.spec.load import parse_definition

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags" / "definitions"
DAGSPEC = Path(sys.executable).with_name("dagspec")

BOMBS = {  # a few KB each; every one escaped load_definition as something other than DefinitionError
    "huge_int.json": '{"dag_id": "huge_int", "start_date": "2025-01-01", "params": {"n": ' + "7" * 5000 + '}, "steps": []}',
    "deep_lists.json": '{"dag_id": "deep_lists", "params": ' + "[" * 3000 + "]" * 3000 + ', "steps": []}',
    "deep_objects.json": '{"dag_id": "deep_objects", "steps": ' + '{"a": ' * 2000 + "1" + "}" * 2000 + "}",
    "nan.json": '{"dag_id": "nan", "start_date": "2025-01-01", "retry_delay_minutes": NaN, "steps": []}',
    "inf.json": '{"dag_id": "inf", "start_date": "2025-01-01", "retry_delay_minutes": 1e400, "steps": []}',
    # 900 KB: pydantic's 300,000 errors took 22 s to explain and made a 44 MB message (the loader has 30 s)
    "many_steps.json": '{"dag_id": "many", "start_date": "2025-01-01", "steps": [' + ",".join(["{}"] * 300_000) + "]}",
}


def minimal(dag_id: str, table: str | None = None, **changes) -> dict:
    data = {"dag_id": dag_id, "start_date": "2025-01-01",
            "steps": [{"id": "extract", "kind": "extract", "source": {"table": "orders"},
                       "target": {"schema": "raw", "table": table or dag_id.replace("-", "_").replace(".", "_")}}]}
    data.update(changes)
    return data


def problems_of(data: dict | str) -> list[tuple[str, str, str]]:
    raw = (data if isinstance(data, str) else json.dumps(data)).encode()
    with pytest.raises(DefinitionError) as info:
        parse_definition(raw, "x.json")
    return [(p.path, p.message, p.fix) for p in info.value.problems]


# --- 1. parser bombs and internal errors are the file's own DefinitionError -------------------

@pytest.mark.parametrize("name", sorted(BOMBS))
def test_parser_bomb_is_one_definition_error(name):
    [(path, message, fix)] = problems_of(BOMBS[name])
    assert message and fix
    print(name, path, message)


def test_a_file_with_thousands_of_problems_reports_a_bounded_list_quickly():
    from dagspec.spec.load import MAX_PROBLEMS

    text = json.dumps({"dag_id": "x", "start_date": "2025-01-01", "steps": [{"id": "a", "kind": "extract"}] * 9_000})
    started = time.perf_counter()
    got = problems_of(text)
    print(f"9,000 broken steps: {time.perf_counter() - started:.2f} s")
    # two missing keys per step, and 8,999 repeated ids
    assert len(got) == MAX_PROBLEMS + 1 and got[-1][1] == f"{3 * 9_000 - 1 - MAX_PROBLEMS:,} more problem(s) not shown"


def test_any_exception_inside_the_checks_is_a_definition_error(monkeypatch):
    from dagspec.spec import model

    def broken(*a, **kw):
        raise RuntimeError("a bug in a rule")

    monkeypatch.setattr(model.Pipeline, "model_validate", broken)
    [(path, message, _)] = problems_of(minimal("fine"))
    assert path == "$" and "RuntimeError: a bug in a rule" in message


def bomb_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "definitions"
    shutil.copytree(EXAMPLES, folder)
    for name, text in BOMBS.items():
        (folder / name).write_text(text)
    return folder


def test_validate_and_list_survive_bombs_with_one_line_each(tmp_path):
    folder = bomb_folder(tmp_path)
    res = subprocess.run([str(DAGSPEC), "validate", str(folder)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert sorted(line.split(": ", 1)[0].rsplit("/", 1)[-1] for line in lines) == sorted(BOMBS)
    assert f"{len(list(EXAMPLES.glob('*.json')))} valid definition(s), {len(BOMBS)} problem(s)" in res.stderr
    listed = subprocess.run([str(DAGSPEC), "list", "--folder", str(folder)], capture_output=True, text=True,
                            timeout=120, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert listed.returncode == 0 and "Traceback" not in listed.stdout + listed.stderr
    assert listed.stdout.count("1 problem(s)") == len(BOMBS) and listed.stdout.count("valid") >= 4


def test_definitions_page_lists_bombs_as_rows(tmp_path):
    from dagspec.airflow.ui import collect

    folder = bomb_folder(tmp_path)
    rows = {r.file: r for r in collect(folder, resolver=lambda c: (_ for _ in ()).throw(KeyError(c)), registry_wait=0)}
    assert {n for n, r in rows.items() if not r.valid} == set(BOMBS)
    assert all(len(rows[n].errors) == 1 for n in BOMBS)
    assert {p.stem for p in EXAMPLES.glob("*.json")} <= {n.removesuffix(".json") for n, r in rows.items() if r.valid}


def test_loader_files_a_failed_dag_build_under_its_definition_only(tmp_path, monkeypatch, caplog):
    import dagspec.airflow.build as build
    from dagspec.airflow.loader import load_dags, stub_name

    folder = bomb_folder(tmp_path)
    real = build.build_dag

    def flaky(pipeline, source):
        if pipeline.dag_id == "customers_snapshot":
            raise KeyError("a dagspec bug")
        return real(pipeline, source)

    monkeypatch.setattr(build, "build_dag", flaky)
    dags = load_dags(folder)
    assert set(dags) == {p.stem for p in EXAMPLES.glob("*.json")} - {"customers_snapshot"}
    stubs = folder.parent / "_definition_errors"
    assert {p.name for p in stubs.glob("*.py")} == {stub_name(Path(n)) for n in [*BOMBS, "customers_snapshot.json"]}
    assert "Traceback" in caplog.text and "a dagspec bug" in caplog.text  # the processor log has it
    record = json.loads((stubs / ".customers_snapshot.json").read_text())
    assert "dagspec could not build this DAG: KeyError" in record["problems"]


def test_sync_rejects_bombs_and_stolen_tables_and_brings_the_rest(s3_server, tmp_path, monkeypatch):
    """Against moto S3: one bad object costs only itself, and a drop that would take a live definition's
    table is refused (in the folder, both would stop loading)."""
    from dagspec.sync import sync

    bucket = s3_server.make_bucket("hostile")
    monkeypatch.setenv("AIRFLOW_CONN_HOSTILE_DROPS", s3_server.connection_json())
    drops = {**BOMBS, "fine.json": json.dumps(minimal("fine")),
             "thief.json": json.dumps(minimal("thief", "live_orders")),
             "rev-a.json": json.dumps(minimal("Live-One", "own_table"))}
    for name, text in drops.items():
        s3_server.client().put_object(Bucket=bucket, Key=f"drops/{name}", Body=text.encode())
    target = tmp_path / "definitions"
    target.mkdir()
    (target / "live.json").write_text(json.dumps(minimal("live_one", "live_orders")))
    (target / "local_bomb.json").write_text(BOMBS["deep_lists.json"])  # the folder itself holds one too
    report = sync(f"s3://{bucket}/drops", "hostile_drops", target)
    assert report.added == ["fine.json"]
    assert sorted(report.rejected) == sorted([*BOMBS, "thief.json", "rev-a.json"])
    assert all(len(p) == 1 for p in report.rejected.values())
    [stolen] = report.rejected["thief.json"]
    assert (stolen.path, stolen.message) == (
        "$.steps[0].target", "writes staged table raw.live_orders in store dagspec_store, which "
        "definitions/live.json ($.steps[0].target) also writes; this drop is not brought in")
    assert "differs from 'live_one'" in report.rejected["rev-a.json"][0].message
    assert sorted(p.name for p in target.glob("*.json")) == ["fine.json", "live.json", "local_bomb.json"]


# --- 2. nothing a definition holds is written into generated Python ---------------------------

HOSTILE_NAMES = [
    'x\nopen("pwned_newline", "w").close()\n#.json',
    "q'\"\"\"'''\\\nopen('pwned_quotes', 'w').close()\n.json",
    "back\\\\slash\\'.json",
    "line\u2028open('pwned_u2028','w').close()\u2029.json",
    "\u202eevil\x0b\x0c\x1b[31m.json",
    "a-b.json",
]


def test_hostile_file_names_never_run_as_code(tmp_path, monkeypatch):
    from dagspec.airflow.loader import DefinitionImportError, stub_name, sync_error_stubs
    from dagspec.spec.discovery import scan

    folder = tmp_path / "dags" / "definitions"
    folder.mkdir(parents=True)
    for name in HOSTILE_NAMES:
        (folder / name).write_text(json.dumps({"dag_id": "bad", "steps": [], 'key"\n__import__("os")': 1}))
    _, bad = scan(folder)
    assert len(bad) == len(HOSTILE_NAMES)
    for error in bad.values():  # one plain line per problem, whatever the file and its keys are called
        lines = str(error).split("\n")
        assert len(lines) == len(error.problems) and all(line.isprintable() for line in lines)
    sync_error_stubs(folder, bad)
    stubs = sorted((tmp_path / "dags" / "_definition_errors").glob("*.py"))
    assert len(stubs) == len(HOSTILE_NAMES)
    assert {p.name for p in stubs} == {stub_name(folder / n) for n in HOSTILE_NAMES}
    monkeypatch.chdir(tmp_path)
    for stub in stubs:
        text = stub.read_text()
        assert text.isascii() and "open(" not in text and "__import__" not in text and "pwned" not in text
        with pytest.raises(DefinitionImportError) as info:
            runpy.run_path(str(stub))
        assert "required key 'start_date' is missing" in str(info.value)


def test_hostile_bundle_folder_names_never_run_as_code_and_good_ones_still_load(tmp_path, monkeypatch):
    from dagspec.airflow.loader import DefinitionImportError, sync_error_stubs
    from dagspec.spec.discovery import scan

    folder = tmp_path / "dags" / "definitions"
    folder.mkdir(parents=True)
    for name in HOSTILE_NAMES:
        bundle = folder / name.removesuffix(".json")
        (bundle / "sql").mkdir(parents=True)
        (bundle / "x.json").write_text(json.dumps({"dag_id": "bad", "steps": []}))
    (folder / "good").mkdir()
    (folder / "good" / "minimal.json").write_text((ROOT / "tests/definitions/good/minimal.json").read_text())
    good, bad = scan(folder)
    assert [p.dag_id for p in good.values()] == [json.loads((ROOT / "tests/definitions/good/minimal.json").read_text())["dag_id"]]
    assert len(bad) == len(HOSTILE_NAMES)
    sync_error_stubs(folder, bad)
    stubs = sorted((tmp_path / "dags" / "_definition_errors").glob("*.py"))
    assert len(stubs) == len(HOSTILE_NAMES)  # x.json in every bundle, and still one stub each
    monkeypatch.chdir(tmp_path)
    for stub in stubs:
        assert stub.read_text().isascii() and "pwned" not in stub.read_text()
        with pytest.raises(DefinitionImportError) as info:
            runpy.run_path(str(stub))
        assert "required key 'start_date' is missing" in str(info.value)
    assert not list(tmp_path.rglob("pwned*"))
    assert not list(tmp_path.glob("pwned*"))


# --- 3. duplicate keys --------------------------------------------------------------------------

def test_duplicate_keys_at_any_depth_are_named_by_path():
    text = ('{"dag_id": "a", "dag_id": "b", "start_date": "2025-01-01", "steps": [{"id": "e", "kind": "extract", '
            '"source": {"table": "t", "table": "u"}, "target": {"schema": "raw", "table": "t"}}], '
            '"params": {"x": 1, "x": 2, "x": 3}}')
    got = problems_of(text)
    assert [p for p, _, _ in got] == ["$.dag_id", "$.steps[0].source.table", "$.params.x"]
    assert all("more than once" in m and f.startswith("keep one") for _, m, f in got)


# --- 4. self-dependency and a linear step order ------------------------------------------------

def test_a_step_in_its_own_after_is_refused_at_validate():
    data = minimal("selfish")
    data["steps"][0]["after"] = ["extract"]
    assert problems_of(data) == [("$.steps[0].after[0]", "a step cannot wait for itself",
                                  "remove it from its own 'after'")]
    from dagspec.spec.graph import topological
    from dagspec.spec.model import Pipeline

    with pytest.raises(ValueError, match="cycle: extract -> extract"):  # was a bare StopIteration
        topological(Pipeline.model_validate(data))  # built in code, past validation


def big_pipeline(n: int) -> dict:
    steps = []
    for i in range(n):
        step = {"id": f"s{i}", "kind": "transform", "sql": "x.sql"}
        if i % 7 == 0:
            step["after"] = []  # a new branch
        elif i % 5 == 0:
            step["after"] = [f"s{i // 2}", f"s{i - 1}"]
        steps.append(step)
    return {"dag_id": "wide", "start_date": "2025-01-01", "steps": steps}


def test_ten_thousand_steps_validate_and_order_fast():
    from dagspec.spec.graph import find_cycle, topological, upstream

    data = big_pipeline(10_000)
    started = time.perf_counter()
    pipeline = parse_definition(json.dumps(data).encode(), "wide.json")
    parsed = time.perf_counter()
    order = topological(pipeline)
    ordered = time.perf_counter()
    print(f"10,000 steps: validate {parsed - started:.2f} s, order {ordered - parsed:.3f} s")
    assert sorted(order) == sorted(s["id"] for s in data["steps"])
    position = {s: i for i, s in enumerate(order)}
    assert all(position[d] < position[s] for s, deps in upstream(pipeline).items() for d in deps)
    assert find_cycle(pipeline) == []


def test_ten_thousand_steps_listed_backwards_order_fast():
    """Each step waits for the one after it: the old order scanned every remaining step for each pick
    (2,000 steps: 24 s; cubic)."""
    from dagspec.spec.graph import topological

    n = 10_000
    steps = [{"id": f"s{i}", "kind": "transform", "sql": "x.sql", "after": [f"s{i + 1}"] if i + 1 < n else []}
             for i in range(n)]
    pipeline = parse_definition(json.dumps({"dag_id": "backwards", "start_date": "2025-01-01", "steps": steps}).encode(),
                                "b.json")
    started = time.perf_counter()
    order = topological(pipeline)
    print(f"10,000 steps backwards: order {time.perf_counter() - started:.3f} s")
    assert order == [f"s{i}" for i in reversed(range(n))]


def test_order_keeps_definition_order_for_ties_and_cycles_are_found():
    from dagspec.spec.graph import find_cycle, topological
    from dagspec.spec.model import Pipeline

    data = minimal("ties")
    data["steps"] = [{"id": i, "kind": "transform", "sql": "x.sql", "after": a}
                     for i, a in [("c", ["b"]), ("a", []), ("b", []), ("d", ["a"])]]
    assert topological(Pipeline.model_validate(data)) == ["a", "b", "c", "d"]
    data["steps"][1]["after"] = ["c"]  # a -> c -> b: fine; now b waits for d, d for a, a for c, c for b
    data["steps"][2]["after"] = ["d"]
    cyclic = Pipeline.model_validate(data)
    assert [s for _, s in find_cycle(cyclic)] == ["c", "b", "d", "a", "c"]
    with pytest.raises(ValueError, match="cycle"):
        topological(cyclic)


# --- 5 + 6. one owner per dag_id key and per written place, across the folder ------------------

def folder_with(tmp_path: Path, definitions: dict[str, dict]) -> Path:
    folder = tmp_path / "definitions"
    folder.mkdir()
    for name, data in definitions.items():
        (folder / name).write_text(json.dumps(data))
    return folder


def refused(folder: Path) -> dict[str, list[str]]:
    from dagspec.spec.discovery import scan

    good, bad = scan(folder)
    return {p.name: [f"{x.path}: {x.message}" for x in e.problems] for p, e in bad.items()}


def test_colliding_dag_ids_are_refused_like_duplicates(tmp_path):
    folder = folder_with(tmp_path, {"a.json": minimal("rev-a", "a"), "b.json": minimal("rev_a", "b"),
                                    "c.json": minimal("Rev_A", "c"), "d.json": minimal("rev.b", "d"),
                                    "ok.json": minimal("rev_b2", "e")})
    got = refused(folder)
    assert sorted(got) == ["a.json", "b.json", "c.json"]
    assert "'rev_a' in definitions/b.json" in got["a.json"][0] and "definitions/c.json" in got["a.json"][0]
    res = subprocess.run([str(DAGSPEC), "validate", str(folder)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and len(res.stdout.splitlines()) == 3 and "2 valid definition(s)" in res.stderr


def publish(step_id: str, inp: str, **targets) -> dict:
    return {"id": step_id, "kind": "publish", "input": inp, **targets}


def test_two_definitions_never_own_one_place(tmp_path):
    a = minimal("a", "orders")
    a["steps"].append(publish("pub", "extract", table={"schema": "Analytics", "table": "Daily"}))
    b = minimal("b", "b_orders")
    b["steps"].append(publish("pub", "extract", table={"schema": "analytics", "table": "daily"}))
    c = minimal("c", "c_orders")
    c["steps"].append(publish("exp", "extract", export={"format": "parquet", "target": {"schema": "out", "table": "x"}}))
    d = minimal("d", "x")
    d["steps"][0]["target"]["schema"] = "out"  # stages where c exports
    e = minimal("e", "orders", store={"conn_id": "other_store"})  # a's table name, another store: allowed
    f = minimal("f", "f_orders", warehouse={"conn_id": "other_wh"})
    f["steps"].append(publish("pub", "extract", table={"schema": "analytics", "table": "daily"}))
    g = minimal("g", "g_orders")
    g["steps"].append({"id": "t", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract"],
                       "target": {"schema": "analytics", "table": "DAILY"}})
    folder = folder_with(tmp_path, {f"{k}.json": v for k, v in dict(a=a, b=b, c=c, d=d, e=e, f=f, g=g).items()})
    got = refused(folder)
    assert sorted(got) == ["a.json", "b.json", "c.json", "d.json", "g.json"]
    assert got["a.json"] == ["$.steps[1].table: writes published table Analytics.Daily in warehouse dagspec_warehouse, "
                             "which definitions/b.json ($.steps[1].table), definitions/g.json ($.steps[1].target) "
                             "also write; none of them is loaded"]
    assert got["c.json"][0].startswith("$.steps[1].export: writes exported table out.x in store dagspec_store, "
                                       "which definitions/d.json ($.steps[0].target)")


def test_default_work_tables_that_meet_are_refused(tmp_path):
    """'a__b' + step 'c' and 'a' + step 'b__c' both default to dagspec_work.a__b__c."""
    one = minimal("a__b", "one")
    one["steps"].append({"id": "c", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract"]})
    two = minimal("a", "two")
    two["steps"].append({"id": "b__c", "kind": "transform", "sql": "orders/daily_revenue.sql", "inputs": ["extract"]})
    got = refused(folder_with(tmp_path, {"one.json": one, "two.json": two}))
    assert got["one.json"] == ["$.steps[1]: writes transform table dagspec_work.a__b__c in warehouse "
                               "dagspec_warehouse, which definitions/two.json ($.steps[1]) also writes; neither is loaded"]


def test_two_steps_of_one_definition_writing_one_table():
    data = minimal("twice", "t")
    data["steps"].append({"id": "again", "kind": "extract", "after": [], "source": {"table": "x"},
                          "target": {"schema": "RAW", "table": "T"}})
    [(path, message, _)] = problems_of(data)
    assert path == "$.steps[1].target" and "which $.steps[0].target also writes" in message


# --- 7. absurd numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("change, path", [
    ({"batch_days": 1e23}, "$.batch_days"), ({"batch_days": 10**30}, "$.batch_days"),
    ({"batch_days": 7.0}, "$.batch_days"), ({"batch_days": True}, "$.batch_days"),
    ({"retry_delay_minutes": 1e300}, "$.retry_delay_minutes"), ({"max_active_runs": 2.5}, "$.max_active_runs"),
    ({"freshness": {"max_age_hours": 1e300}}, "$.freshness.max_age_hours"),
])
def test_absurd_numbers_are_refused(change, path):
    got = problems_of(minimal("n", **change))
    assert [p for p, _, _ in got] == [path] and got[0][2]


@pytest.mark.parametrize("value", [-1, 367, 10**30, 1e23, 5.0, "5", True, None, [5]])
def test_a_lookback_that_is_not_0_to_366_whole_days_is_refused_by_path(value):
    [(path, message, fix)] = problems_of(minimal("n", lookback=value))
    assert path == "$.lookback" and message and fix


def test_a_lookback_variable_that_is_not_a_day_count_is_refused_by_name():
    from dagspec.lookback import lookback_value

    assert lookback_value(" 7 ", "Airflow Variable 'dagspec_lookback'") == 7
    for raw in ("-1", "367", "1e3", "7; DROP TABLE x", "²", "", "9" * 5000):
        with pytest.raises(ValueError) as info:
            lookback_value(raw, "Airflow Variable 'dagspec_lookback__n'")
        text = str(info.value)
        assert "Airflow Variable 'dagspec_lookback__n'" in text and "0 to 366" in text and len(text) < 300


def test_absurd_step_numbers_are_refused():
    data = minimal("n")
    data["steps"][0]["chunk_rows"] = 1e23
    assert [p for p, _, _ in problems_of(data)] == ["$.steps[0].chunk_rows"]


# --- the corpus: hostile files next to the shipped examples, in a real DagBag ---------------------

def write_corpus(defs: Path) -> dict[str, bytes | str]:
    """The hostile files of this module (and the golden bad corpus but for its folder pairs) into ``defs``."""
    hostile = dict(BOMBS)
    hostile.update({n: json.dumps({"dag_id": "x", "steps": []}) for n in HOSTILE_NAMES})
    selfish = minimal("selfish")
    selfish["steps"][0]["after"] = ["extract"]
    hostile["selfish.json"] = json.dumps(selfish)
    wide = big_pipeline(10_000)
    wide["steps"].append({"id": "loop", "kind": "transform", "sql": "x.sql", "after": ["loop"]})
    hostile["wide.json"] = json.dumps(wide)
    hostile["twin.json"] = json.dumps(minimal("Orders-Daily", "twin"))  # collides with orders_daily
    for name in sorted(p.name for p in (ROOT / "tests" / "definitions" / "bad").glob("*.json")):
        if not name.startswith("dup_"):
            hostile[name] = (ROOT / "tests" / "definitions" / "bad" / name).read_bytes()
    for name, text in hostile.items():
        (defs / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return hostile


@pytest.mark.e2e
def test_dagbag_holds_every_example_and_one_import_error_per_hostile_file(airflow_db, dags_folder):
    from airflow.dag_processing.dagbag import DagBag

    from dagspec.airflow.loader import stub_name

    defs = dags_folder / "definitions"
    examples = {json.loads(p.read_text())["dag_id"] for p in defs.glob("*.json")}
    hostile = write_corpus(defs)
    DagBag(dag_folder=str(dags_folder))  # the first pass writes the stubs
    bag = DagBag(dag_folder=str(dags_folder))
    assert set(bag.dags) == examples - {"orders_daily"}  # orders_daily shares its id key with twin.json
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    want = {stub_name(defs / n) for n in [*hostile, "orders_daily.json"]}
    assert set(errors) == want
    assert all("DefinitionImportError" in v for v in errors.values())
    assert not list(dags_folder.glob("pwned*")) and not list(Path.cwd().glob("pwned*"))


# --- 8. every SQL a definition holds renders the same variables, and validate parses it ----------

def test_validate_renders_and_parses_every_sql(tmp_path):
    def query_step(i: int, query: str, **source) -> dict:
        return {"id": f"e{i}", "kind": "extract", "source": {"query": query, **source},
                "target": {"schema": "raw", "table": f"q{i}"}}

    data = minimal("sql_everywhere", params={"region": "eu"})
    data["steps"] = [
        query_step(0, "SELECT * FROM orders WHERE d = '{{ ds }}' AND r = '{{ params.region }}' AND x >= :from_date"),
        query_step(1, "SELECT * FROM orders WHERE d = '{{ dss }}'"),
        query_step(2, "SELECT * FROM orders WHERE d = '{{ ds '"),
        query_step(3, "SELEC * FRM orders WHERE ((("),
        query_step(4, "SELECT 1; DROP TABLE orders"),
        query_step(5, "SELECT * FROM `p.d.t` WHERE x >= :from_date", kind="bigquery"),
    ]
    sql = tmp_path / "sql"
    (sql / "t").mkdir(parents=True)
    (sql / "t" / "good.sql").write_text("SELECT * FROM {{ ref('e0') }} WHERE day = '{{ ds_nodash }}'")
    (sql / "t" / "bad.sql").write_text("SELECT FROM WHERE {{ ref('e0') }} (")
    data["steps"] += [{"id": "t_good", "kind": "transform", "sql": "t/good.sql", "inputs": ["e0"]},
                      {"id": "t_bad", "kind": "transform", "sql": "t/bad.sql", "inputs": ["e0"], "dialect": "postgres"}]
    with pytest.raises(DefinitionError) as info:
        parse_definition(json.dumps(data).encode(), "x.json", sql_dir=sql, check_sql=True)
    got = {p.path: p.message for p in info.value.problems}
    assert sorted(got) == ["$.steps[1].source.query", "$.steps[2].source.query", "$.steps[3].source.query",
                           "$.steps[4].source.query", "$.steps[7].sql"]
    assert "'dss' is undefined" in got["$.steps[1].source.query"]
    assert "not a valid Jinja template" in got["$.steps[2].source.query"]
    assert got["$.steps[3].source.query"].startswith("sqlglot cannot parse the SQL")
    assert "2 statements" in got["$.steps[4].source.query"]
    assert got["$.steps[7].sql"].startswith("sqlglot cannot parse the SQL as postgres")


def test_an_extract_query_gets_the_same_jinja_variables_as_a_transform(data_home, tmp_path):
    """{{ ds }} in source.query was sent to the database literally."""
    import sqlite3
    from datetime import date

    from dagspec.connections import env_resolver
    from dagspec.runner import run_pipeline, window_of_day
    from dagspec.store import Store

    data = minimal("templated_extract", "templated_orders", params={"channel": "web"})
    data["steps"][0]["source"] = {"query": "SELECT order_id FROM orders WHERE date(ordered_at) = '{{ ds }}' "
                                           "AND channel = '{{ params.channel }}' AND ordered_at >= :from_date"}
    pipeline = parse_definition(json.dumps(data).encode(), "t.json", check_sql=True)
    day = date(2025, 3, 1)
    run_pipeline(pipeline, window_of_day(pipeline, day))
    with sqlite3.connect(data_home / "source.db") as db:
        want = db.execute("SELECT count(*) FROM orders WHERE date(ordered_at) = '2025-03-01' AND channel = 'web'"
                          ).fetchone()[0]
    assert want > 0
    store = Store.from_connection(env_resolver("dagspec_store"))
    assert store.partition("raw", "templated_orders", day).rows == want


def test_a_pipe_or_a_huge_file_never_stalls_the_scan(tmp_path):
    """A FIFO named *.json blocked read_bytes forever; a 2 GB sparse file was read whole before the size check."""
    import os

    from dagspec.spec.discovery import scan

    folder = folder_with(tmp_path, {"ok.json": minimal("ok")})
    os.mkfifo(folder / "pipe.json")
    with open(folder / "sparse.json", "wb") as f:
        f.truncate(2 * 1024**3)
    good, bad = scan(folder)
    assert [p.name for p in good] == ["ok.json"]
    assert {p.name: e.problems[0].message for p, e in bad.items()} == {
        "pipe.json": "not a regular file", "sparse.json": "file is 2,147,483,648 bytes; a definition is at most 1,000,000"}


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_the_dag_processor_loads_every_example_beside_the_hostile_corpus(airflow_db, dags_folder):
    """The real `airflow dag-processor` (two passes: the first writes the stubs), read back from its database."""
    import os

    from dagspec.airflow.loader import stub_name

    defs = dags_folder / "definitions"
    examples = {json.loads(p.read_text())["dag_id"] for p in defs.glob("*.json")}
    hostile = write_corpus(defs)
    airflow = Path(sys.executable).with_name("airflow")
    # Its own metadata DB: earlier tests of the session parsed this same DAGs folder into the shared one, and
    # Airflow keeps a DAG active for a while after its file stops defining it.
    env = {**os.environ, "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "1",
           "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "0",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{dags_folder.parent / 'corpus_airflow.db'}"}
    migrated = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=400, env=env)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]
    for _ in range(2):
        res = subprocess.run([str(airflow), "dag-processor", "-n", "1"], capture_output=True, text=True,
                             timeout=400, env=env, cwd=dags_folder)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    listed = subprocess.run([str(airflow), "dags", "list", "-o", "json"], capture_output=True, text=True,
                            timeout=120, env=env)
    errors = subprocess.run([str(airflow), "dags", "list-import-errors", "-o", "json"], capture_output=True,
                            text=True, timeout=120, env=env)
    dag_ids = {d["dag_id"] for d in first_json(listed.stdout)}
    assert examples - {"orders_daily"} <= dag_ids and "orders_daily" not in dag_ids  # twin.json takes its id
    files = {Path(e["filepath"]).name for e in first_json(errors.stdout)}
    assert files == {stub_name(defs / n) for n in [*hostile, "orders_daily.json"]}
    assert not list(dags_folder.glob("pwned*"))


def first_json(stdout: str):
    """The JSON list a CLI printed (the command may append a warning line after it)."""
    return json.JSONDecoder().raw_decode(stdout[stdout.index("[{"):])[0]


def test_list_shows_file_names_as_text_not_markup(tmp_path):
    """rich read '[bold red]x.json' as markup: file names are text."""
    folder = tmp_path / "definitions"
    folder.mkdir()
    for name in ["[bold red]x.json", "[blink]y[\\].json", "line\nbreak.json"]:
        (folder / name).write_text("{}")
    res = subprocess.run([str(DAGSPEC), "list", "--folder", str(folder)], capture_output=True, text=True,
                         timeout=120, env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert "[bold red]x.json" in res.stdout and "[blink]y[\\].json" in res.stdout
    assert "line\\nbreak.json" in res.stdout


def test_an_inline_query_is_rendered_and_parsed_at_validate_like_a_file(tmp_path):
    """A drop carrying its own SQL gets the same checks as a SQL file: a typo is a line in validate, with its path."""
    from dagspec.spec.errors import DefinitionError
    from dagspec.spec.load import load_definition

    definition = {"dag_id": "inline_bad", "start_date": "2025-01-01", "steps": [
        {"id": "extract_orders", "kind": "extract", "source": {"table": "orders"},
         "target": {"schema": "raw_inline", "table": "orders"}},
        {"id": "by_channel", "kind": "transform", "inputs": ["extract_orders"],
         "query": "SELEC channel FROM {{ ref('extract_orders') }} WHERE {{ nope.x }}"}]}
    path = tmp_path / "inline_bad.json"
    path.write_text(json.dumps(definition))
    with pytest.raises(DefinitionError) as err:
        load_definition(path, sql_dir=tmp_path, check_sql=True)
    assert [p.path for p in err.value.problems] == ["$.steps[1].query"]
    assert "does not render" in err.value.problems[0].message


def test_a_model_steps_inline_data_query_is_checked_at_validate_too(tmp_path):
    from dagspec.spec.errors import DefinitionError
    from dagspec.spec.load import load_definition

    train = json.loads((ROOT / "dags" / "definitions" / "orders_model_retrain.json").read_text())["steps"][0]
    train["data"] = {"query": "SELECT * FROM ml.order_features WHERE ordered_at >= :from_date AND (", "days": 10}
    path = tmp_path / "inline_model.json"
    path.write_text(json.dumps({"dag_id": "inline_model", "start_date": "2025-01-01", "steps": [train]}))
    with pytest.raises(DefinitionError) as err:
        load_definition(path, sql_dir=tmp_path, check_sql=True)
    assert [p.path for p in err.value.problems] == ["$.steps[0].data.query"]
    assert "sqlglot cannot parse the SQL" in err.value.problems[0].message


@pytest.mark.parametrize("payload", [
    "{{ cycler.__init__.__globals__.os.system('touch PWNED') }}",
    "{{ macros.__class__.__mro__[-1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ params.update(x=1) }}",
    "{{ macros.time.sleep(600) }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    # Memory bombs: the sandbox bounds only range(); '*' and '**' are bounded by dagspec.
    "{{ 'x' * 10**10 }}",
    "{% set n = 10**9 %}{{ [0] * n }}",
    "{{ 10 ** (10**9) }}",
])
def test_a_template_in_a_definitions_sql_never_runs_python(tmp_path, monkeypatch, payload):
    """Jinja in a definition is the author's text: rendered in a sandbox, an escape is that SQL's error."""
    from datetime import UTC, datetime

    from dagspec.spec.sql_check import sql_problems
    from dagspec.sql import render_window

    monkeypatch.chdir(tmp_path)
    window = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 2, tzinfo=UTC))
    with pytest.raises(Exception) as err:
        render_window(f"SELECT 1 -- {payload}", *window, {"x": 0})
    assert type(err.value).__name__ in ("SecurityError", "UndefinedError"), err.value
    from dagspec.spec.model import Pipeline

    pipeline = Pipeline.model_validate({"dag_id": "ssti", "start_date": "2025-01-01", "steps": [
        {"id": "t", "kind": "transform", "query": f"SELECT 1 AS one -- {payload}", "inputs": []}]})
    problems = sql_problems(pipeline, tmp_path)
    assert problems and "does not render" in str(problems[0])
    assert not (tmp_path / "PWNED").exists()
