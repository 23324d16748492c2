"""The core never imports Airflow (and DAG parsing never imports the heavy stage libraries); the modules of
include/dagspec form layers without circles, import only their own layer or lower ones, and stay small."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = ["dagspec.spec", "dagspec.runner", "dagspec.stages.extract", "dagspec.stages.validate",
        "dagspec.stages.transform", "dagspec.stages.publish", "dagspec.store", "dagspec.cli", "dagspec.sample_data"]

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "dagspec"
MAX_LINES = 400

# Lowest first. Keys are package prefixes (a key covers the module and everything under it), so the map
# survives modules moving inside a package; a key ending in "_" covers the sibling modules it starts
# (store_io, cli_backfill). The bare package `dagspec` (its __init__) sits at the bottom. The CLI sits above
# the Airflow adapter: some commands load the DAGs or Airflow connections, and Airflow never needs the CLI.
LAYERS: list[list[str]] = [
    ["dagspec", "errors", "utc", "secrets", "paths", "windows", "sql", "connections", "filesystems", "gcp",
     "sheets_client", "smtp", "store_", "partitions", "subdaily"],
    ["spec"],
    ["plan"],
    ["sources", "checks", "warehouse", "ml", "store", "publish", "lookback", "alerts"],  # alerts: the monitor stage sends some
    ["stages"],
    ["runner", "freshness", "sync", "sync_parts", "sync_bundles", "seed_import", "dag_files", "error_stubs",
     "sample_data", "transform_tests"],
    ["airflow"],
    ["cli", "cli_"],
]


def _module_name(path: Path) -> str:
    parts = ["dagspec", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the dagspec modules it imports anywhere (inside functions too), relative imports resolved."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def _layer(module: str) -> int | None:
    """The layer of the longest key that covers the module."""
    best: tuple[int, int] | None = None
    for level, keys in enumerate(LAYERS):
        for key in keys:
            full = key if key == "dagspec" else f"dagspec.{key}"
            covers = (module.startswith(full) if key.endswith("_")
                      else module == full or module.startswith(full + "."))
            if covers and (best is None or len(full) > best[0]):
                best = (len(full), level)
    return None if best is None else best[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_core_does_not_import_airflow():
    loaded = _modules_after("\n".join(f"import {m}" for m in CORE))
    assert not {m for m in loaded if m == "airflow" or m.startswith("airflow.")}


def test_building_dags_does_not_import_gx_duckdb_or_sqlalchemy_engines():
    loaded = _modules_after(
        "from pathlib import Path\nfrom dagspec.airflow.loader import load_dags\n"
        "load_dags(Path('dags/definitions'), write_stubs=False)"
    )
    assert "airflow" in loaded
    for heavy in ("great_expectations", "duckdb", "pandas.io.sql"):
        assert heavy not in loaded, heavy


def test_no_import_circles():
    circles = _circles(_import_graph())
    assert not circles, "import circles:\n" + "\n".join("  " + " <-> ".join(c) for c in circles)


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    graph = _import_graph()
    unmapped = sorted(m for m in graph if _layer(m) is None)
    assert not unmapped, f"modules missing from LAYERS: {unmapped}"
    upward = sorted(f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
                    for m, targets in graph.items() for t in targets if _layer(t) > _layer(m))
    assert not upward, "upward imports:\n" + "\n".join("  " + u for u in upward)


def test_no_module_over_400_lines():
    long = sorted(f"{p.relative_to(PACKAGE)}: {n}" for p in PACKAGE.rglob("*.py")
                  if (n := len(p.read_text().splitlines())) > MAX_LINES)
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join("  " + x for x in long)
