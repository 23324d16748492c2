"""The step graph: who waits for whom. Order gives the default, `after` overrides, reads add edges."""

from __future__ import annotations

import difflib
import heapq
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagspec.spec.model import Pipeline


def upstream(pipeline: Pipeline) -> dict[str, list[str]]:
    """step id -> ids it waits for: its `after` (default: the step before it) plus every step it reads."""
    deps: dict[str, list[str]] = {}
    previous: str | None = None
    for step in pipeline.steps:
        base = step.after if step.after is not None else ([previous] if previous else [])
        deps[step.id] = list(dict.fromkeys([*base, *step.refs()]))
        previous = step.id
    return deps


def find_cycle(pipeline: Pipeline) -> list[tuple[int, str]]:
    """A cycle as [(index, step id), ...] ending where it started, or [] when the graph is acyclic."""
    index = {s.id: i for i, s in enumerate(pipeline.steps)}
    return [(index[s], s) for s in cycle_in(upstream(pipeline))]


def topological(pipeline: Pipeline, deps: dict[str, list[str]] | None = None) -> list[str]:
    """Step ids in an order that respects every dependency (`deps`: its `upstream`, when the caller has it),
    ties broken by definition order.

    Kahn's algorithm with a heap of ready steps keyed by position: O((steps + edges) log steps).
    """
    deps = upstream(pipeline) if deps is None else deps
    position = {s.id: i for i, s in enumerate(pipeline.steps)}
    waiting = {s: 0 for s in deps}
    downstream: dict[str, list[str]] = {s: [] for s in deps}
    for step, ups in deps.items():
        for up in ups:
            if up in downstream:
                waiting[step] += 1
                downstream[up].append(step)
    ready = [position[s] for s, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    ids = [s.id for s in pipeline.steps]
    while ready:
        step = ids[heapq.heappop(ready)]
        order.append(step)
        for down in downstream[step]:
            waiting[down] -= 1
            if waiting[down] == 0:
                heapq.heappush(ready, position[down])
    if len(order) < len(deps):  # validation refuses cycles; a Pipeline built in code may still hold one
        cycle = cycle_in(deps)
        raise ValueError("steps depend on each other in a cycle: " + " -> ".join(cycle or sorted(set(deps) - set(order))))
    return order


def cycle_in(deps: dict[str, list[str]]) -> list[str]:
    """A cycle of the graph (node -> nodes it waits for) as [a, b, ..., a], or []. Self-loops count.

    Iterative depth-first search: a definition may hold thousands of steps; recursion would overflow.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in deps:
        if start in state:
            continue
        path: list[str] = []
        on_path: dict[str, int] = {}
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                on_path[node] = len(path)
                path.append(node)
            children = deps.get(node, [])
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if child not in deps:
                    continue
                if state.get(child) == 1:
                    return path[on_path[child]:] + [child]
                if child not in state:
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
                del on_path[node]
    return []


# --- Checks that run even when pydantic rejected part of the file ------------------------------
# A person fixing a definition wants every problem at once. Pydantic stops at field level, so the
# cross-step rules (references, cycles, SQL files) run on "views": the steps that validated as
# models, and the raw JSON of those that did not, as far as its shape allows.


@dataclass
class StepView:
    index: int
    id: str | None
    kind: str | None
    after: list[tuple[int, str]] | None  # (position in 'after', step id); None: default (the previous step)
    refs: list[tuple[tuple[str | int, ...], str]] = field(default_factory=list)  # (loc under the step, step id)
    sql: str | None = None  # a SQL file the step names
    sql_at: tuple[str, ...] = ("sql",)  # where, under the step (a model step's data: data.sql, labels.data.sql)


@lru_cache(maxsize=64)
def _field_names(cls: type) -> frozenset[str]:
    # pydantic computes `model_fields` on every access (30 us); a definition asks once per step and check.
    return frozenset(cls.model_fields)


def view_of_model(index: int, step: Any) -> StepView:
    fields = _field_names(type(step))
    sql, sql_at = (step.sql, ("sql",)) if "sql" in fields and isinstance(step.sql, str) else (None, ("sql",))
    data = step.data if "data" in fields else None
    if sql is None and isinstance(getattr(data, "sql", None), str):
        sql, sql_at = data.sql, ("data", "sql")
    labels = getattr(step.labels, "data", None) if "labels" in fields else None  # a monitor step's labels SQL
    if sql is None and isinstance(getattr(labels, "sql", None), str):
        sql, sql_at = labels.sql, ("labels", "data", "sql")
    return StepView(
        index=index,
        id=step.id,
        kind=step.kind,
        after=None if step.after is None else list(enumerate(step.after)),
        refs=_refs_of(step, fields),
        sql=sql,
        sql_at=sql_at,
    )


def _refs_of(step: Any, fields: frozenset[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Where a step reads other steps. Checked on the class: a pydantic instance's missing attribute is slow."""
    own = getattr(type(step), "ref_fields", None)
    if own is not None:  # step kinds defined in their own modules say where they read
        return own(step)
    refs: list[tuple[tuple[str | int, ...], str]] = []
    if "input" in fields and isinstance(step.input, str):
        refs.append((("input",), step.input))
    if "inputs" in fields and isinstance(step.inputs, list):
        refs.extend((("inputs", k), r) for k, r in enumerate(step.inputs))
    return refs


def view_of_raw(index: int, raw: Any) -> StepView:
    """What can be trusted of a step pydantic rejected: well-typed ids and references only."""
    if not isinstance(raw, dict):
        return StepView(index, None, None, None)
    sid = raw.get("id") if isinstance(raw.get("id"), str) else None
    kind = raw.get("kind") if isinstance(raw.get("kind"), str) else None
    after_raw = raw.get("after")
    after = [(j, a) for j, a in enumerate(after_raw) if isinstance(a, str)] if isinstance(after_raw, list) else None
    refs: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(raw.get("input"), str):
        refs.append((("input",), raw["input"]))
    if isinstance(raw.get("inputs"), list):
        refs.extend((("inputs", k), r) for k, r in enumerate(raw["inputs"]) if isinstance(r, str))
    sql, sql_at = (raw["sql"], ("sql",)) if isinstance(raw.get("sql"), str) else (None, ("sql",))
    data = raw.get("data")
    if sql is None and isinstance(data, dict) and isinstance(data.get("sql"), str):
        sql, sql_at = data["sql"], ("data", "sql")
    return StepView(index, sid, kind, after, refs, sql, sql_at)


def view_problems(views: list[StepView], rules: dict[str, set[str]]) -> list[tuple[tuple[str | int, ...], str, str]]:
    """Duplicate ids, unknown or wrong-kind references, and a cycle: (loc, message, fix) each."""
    problems: list[tuple[tuple[str | int, ...], str, str]] = []
    known_kinds = set(rules).union(*rules.values())  # a step of an unknown kind is reported as such, once
    index: dict[str, StepView] = {}
    for v in views:
        if v.id is None:
            continue
        if v.id in index:
            problems.append((("steps", v.index, "id"), f"step id {v.id!r} is used twice", "give every step its own id"))
        else:
            index[v.id] = v
    for v in views:
        for j, name in v.after or []:
            if name not in index:
                problems.append((("steps", v.index, "after", j), f"unknown step {name!r}", _fix_unknown(name, index)))
            elif name == v.id:
                problems.append((("steps", v.index, "after", j), "a step cannot wait for itself",
                                 "remove it from its own 'after'"))
        for loc, ref in v.refs:
            target = index.get(ref)
            where = ("steps", v.index, *loc)
            if target is None:
                problems.append((where, f"unknown step {ref!r}", _fix_unknown(ref, index)))
            elif ref == v.id:
                problems.append((where, "a step cannot read its own output", "name an earlier step"))
            elif v.kind in rules and target.kind in known_kinds and target.kind not in rules[v.kind]:
                problems.append((where, f"step {ref!r} is a {target.kind} step and has no batch to read",
                                 "point at an extract or transform step"))
    cycle = _view_cycle(views, index)
    if cycle:
        first = index[cycle[0]]
        problems.append((("steps", first.index, "after"),
                         "steps depend on each other in a cycle: " + " -> ".join(cycle),
                         "remove one of these 'after' entries"))
    return problems


def _fix_unknown(name: str, index: dict[str, StepView]) -> str:
    if not index:
        return "define that step first"
    listing = f"use one of: {', '.join(index)}"
    if len(index) <= 12:
        return listing
    close = difflib.get_close_matches(name, list(index), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else listing


def _view_cycle(views: list[StepView], index: dict[str, StepView]) -> list[str]:
    deps: dict[str, list[str]] = {}
    previous: str | None = None
    for v in views:
        if v.id is None or v.id in deps:
            previous = v.id if v.id is not None else previous
            continue
        base = [a for _, a in v.after] if v.after is not None else ([previous] if previous else [])
        # Waiting for or reading itself is reported on its own, at the entry that says so.
        deps[v.id] = [d for d in dict.fromkeys([*base, *(r for _, r in v.refs)]) if d in index and d != v.id]
        previous = v.id
    return cycle_in(deps)
