"""
Routers of graphai-lib 0.0.12 (section 7 checks 19-21, section 2.7): routing by ``choice``,
the choice key kept in the result but hidden from ``upstream``, unknown and missing choices,
end nodes and end routers stopping the run.
"""

import asyncio

import pytest

from graphai import Graph, NodeNotFoundError, node, router
from tests._stream import TIMEOUT


class TestRouters:
    """Routers go to their `choice` (kept in the result); end nodes stop the run (checks 19-21)."""

    def _graph(self, choice):
        ran = []

        @node(start=True)
        async def start():
            ran.append("start")
            return {}

        @router
        async def r():
            ran.append("r")
            return choice

        @node(end=True)
        async def a():
            ran.append("a")
            return {"a": 1}

        @node(end=True)
        async def b():
            ran.append("b")
            return {"b": 1}

        @node(end=True)
        async def c():
            ran.append("c")
            return {"c": 1}

        g = Graph()
        for n in (start, r, a, b, c):
            g.add_node(n)
        g.add_edge(start, r).add_router(sources=[], router=r, destinations=[a, b])
        return g, ran

    async def test_router_runs_only_the_choice_and_keeps_choice_key(self):
        g, ran = self._graph({"choice": "b"})
        assert await g.execute({}) == {"choice": "b", "b": 1}
        assert ran == ["start", "r", "b"]

    async def test_choice_without_edge_is_followed(self):
        g, ran = self._graph({"choice": "c"})
        assert await g.execute({}) == {"choice": "c", "c": 1}
        assert ran == ["start", "r", "c"]

    async def test_unknown_choice(self):
        g, _ = self._graph({"choice": "nope"})
        with pytest.raises(NodeNotFoundError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == "Node with name nope not found."

    async def test_missing_choice_is_key_error(self):
        g, _ = self._graph({"other": 1})
        with pytest.raises(KeyError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ei.value.args == ("choice",)

    async def test_router_output_seen_downstream_has_no_choice(self):
        seen = []

        @node(start=True)
        async def s():
            return {}

        @router
        async def r():
            return {"choice": "e", "x": 1}

        @node(end=True)
        async def e(upstream: dict):
            seen.append(upstream)
            return {}

        g = Graph().add_node(s).add_node(r).add_node(e).add_edge(s, r).add_edge(r, e)
        assert await g.execute({}) == {"choice": "e", "x": 1}
        assert seen == [{"node": "r", "output": {"x": 1}}]

    async def test_end_node_stops_even_with_outgoing_edges(self):
        ran = []

        @node(start=True)
        async def s():
            ran.append("s")
            return {}

        @node(end=True)
        async def e():
            ran.append("e")
            return {}

        @node
        async def after():
            ran.append("after")
            return {}

        g = Graph().add_node(s).add_node(e).add_node(after).add_edge(s, e).add_edge(e, after)
        await g.execute({})
        assert ran == ["s", "e"]

    async def test_end_router_stops(self):
        ran = []

        @router(start=True, end=True)
        async def r():
            ran.append("r")
            return {"choice": "x"}

        @node
        async def x():
            ran.append("x")
            return {}

        g = Graph().add_node(r).add_node(x).add_edge(r, x)
        assert await g.execute({}) == {"choice": "x"}
        assert ran == ["r"]
