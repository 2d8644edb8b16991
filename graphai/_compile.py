"""``Graph.compile()``: the checks a graph must pass before it runs."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Any

from graphai._types import JoinEdge
from graphai.errors import GraphCompileError

__all__ = ["validate"]


def validate(
    nodes: dict[str, Any],
    edges: list[Any],
    start_node: Any,
    end_names: set[str],
    *,
    strict: bool = False,
) -> None:
    """Nodes present, a start node, an end node, every node reachable from the start (regular,
    branch and join edges), and with ``strict=True`` no cycles; raises ``GraphCompileError``."""
    if not nodes:
        raise GraphCompileError("No nodes have been added to the graph")
    start = start_node
    if start is None:
        starts = [n for n, nd in nodes.items() if nd.is_start]
        start = nodes[starts[0]] if starts else None
    if start is None:
        raise GraphCompileError("No start node defined")
    if not any(n.is_end for n in nodes.values()) and not end_names:
        raise GraphCompileError("No end node defined")
    adj: dict[str, set[str]] = {name: set() for name in nodes}
    for e in edges:
        if isinstance(e, JoinEdge):
            for s in e.sources:
                adj[s.name].add(e.destination.name)
        else:
            if e.destination.name not in nodes:
                raise GraphCompileError(
                    f"Edge from {e.source.name} references unknown node(s): ['{e.destination.name}']"
                )
            adj[e.source.name].add(e.destination.name)
    seen: set[str] = set()
    stack = [start.name]
    while stack:
        cur = stack.pop()
        if cur in seen:
            continue
        seen.add(cur)
        stack.extend(adj.get(cur, ()))
    unreachable = sorted(set(nodes) - seen)
    if unreachable:
        raise GraphCompileError(f"Unreachable nodes: {unreachable}")
    if strict:
        preds: dict[str, set[str]] = {n: set() for n in nodes}
        for s, ds in adj.items():
            for d in ds:
                preds[d].add(s)
        try:
            list(TopologicalSorter(preds).static_order())
        except CycleError as exc:
            raise GraphCompileError("cycle detected in graph (strict mode)") from exc
