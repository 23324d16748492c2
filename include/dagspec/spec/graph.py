"""The step graph: who waits for whom. Order gives the default, `after` overrides, reads add edges."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    deps = upstream(pipeline)
    index = {s.id: i for i, s in enumerate(pipeline.steps)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in deps.get(node, []):
            if dep not in index:
                continue
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return []

    for step in pipeline.steps:
        if state.get(step.id) is None:
            cycle = visit(step.id)
            if cycle:
                return [(index[s], s) for s in cycle]
    return []


def topological(pipeline: Pipeline) -> list[str]:
    """Step ids in an order that respects every dependency, ties broken by definition order."""
    deps = upstream(pipeline)
    done: list[str] = []
    remaining = [s.id for s in pipeline.steps]
    while remaining:
        ready = next(s for s in remaining if all(d in done for d in deps[s]))
        done.append(ready)
        remaining.remove(ready)
    return done
