"""Building and compiling a graph (fixes 5 and 10): ``compile()`` counts join edges for
reachability and ``set_end_node()`` as an end node; ``add_edge()`` with an object that is no node
and no name raises ``TypeError`` naming the argument."""

import asyncio

import pytest

from graphai import Graph, node
from tests._stream import TIMEOUT


class TestFix05CompileCountsJoinsAndSetEndNode:
    """`compile()` counts join edges for reachability and `set_end_node` as an end node."""

    def test_join_only_destination_is_reachable(self):
        """Fails on upstream because `compile()` skips `JoinEdge`s: `GraphCompileError:
        Unreachable nodes: ['end']` although `execute()` reaches `end`."""

        @node(start=True)
        async def start():
            return {}

        @node
        async def a():
            return {}

        @node
        async def b():
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_parallel(start, [a, b]).add_join([a, b], end)
        assert g.compile() is g
        assert g.compile(strict=True) is g

    async def test_set_end_node_counts(self):
        """Fails on upstream because `set_end_node` only stores the node: `compile()` raises
        `No end node defined` (and `execute()` would not stop there)."""

        @node(start=True)
        async def start():
            return {}

        @node
        async def last():
            return {"last": True}

        g = Graph().add_node(start).add_node(last).add_edge(start, last).set_end_node(last)
        assert g.compile() is g
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"last": True}


class TestFix10AddEdgeTypeError:
    """`add_edge` with an object that is neither a node nor a name raises `TypeError` naming
    the argument."""

    def test_add_edge_with_int(self):
        """Fails on upstream because `_get_node` never assigns its local for such objects:
        `UnboundLocalError: cannot access local variable 'node'`."""

        @node(start=True)
        async def a():
            return {}

        g = Graph().add_node(a)
        with pytest.raises(TypeError) as ei:
            g.add_edge(a, 123)
        assert "destination" in str(ei.value)
        assert "123" in str(ei.value)
        assert g.edges == []
