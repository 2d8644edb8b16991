"""Misuse of the public API that mypy --strict must reject (never executed): see
tests/typing/test_misuse.py, which asserts each error by line."""

from __future__ import annotations

from graphai import Graph, node


@node(start=True, end=True)
async def one() -> dict[str, int]:
    return {"x": 1}


async def misuse() -> None:
    g = Graph()
    g.add_node(42)  # error: not a node
    g.add_edge(one, 3.5)  # error: neither a node nor a name
    g.set_callback(dict)  # error: not a callback class
    await g.execute({"x": 1}, callback="stream")  # error: not a callback
    g.set_start_node("one")  # error: a node, not a name
