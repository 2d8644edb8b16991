"""
The ``max_steps`` limit of graphai-lib 0.0.12 (section 7 checks 22, 23, section 2.7): how steps
are counted on chains, router loops and parallel layers, and ``MaxStepsError`` with upstream's
message.
"""

import asyncio
import itertools

import pytest

from graphai import Graph, GraphError, MaxStepsError, node, router
from tests._stream import TIMEOUT

MAX_STEPS_MSG = (
    "Max steps reached: {}. You can modify this by setting `max_steps` when initializing the "
    "Graph object."
)


def _chain(n, **graph_kwargs):
    ran = []

    async def step(i: int = 0):
        ran.append(i)
        return {"i": i + 1}

    g = Graph(**graph_kwargs)
    nodes = [node(step, name=f"n{k}", start=k == 0, end=k == n - 1) for k in range(n)]
    for nd in nodes:
        g.add_node(nd)
    for x, y in itertools.pairwise(nodes):
        g.add_edge(x, y)
    return g, ran


class TestMaxSteps:
    """0.0.12 `max_steps` accounting; `MaxStepsError` with upstream's message (checks 22, 23)."""

    async def test_default_ten_node_chain_succeeds(self):
        g, ran = _chain(10)
        assert await g.execute({}) == {"i": 10}
        assert len(ran) == 10

    async def test_default_eleven_node_chain_fails(self):
        g, ran = _chain(11)
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert isinstance(ei.value, GraphError)
        assert ei.value.max_steps == 10
        assert str(ei.value) == MAX_STEPS_MSG.format(10)
        assert len(ran) == 10

    async def test_max_steps_three(self):
        g, _ = _chain(3, max_steps=3)
        assert await g.execute({}) == {"i": 3}
        g, ran = _chain(4, max_steps=3)
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ei.value.max_steps == 3
        assert str(ei.value) == MAX_STEPS_MSG.format(3)
        assert ran == [0, 1, 2]

    @pytest.mark.parametrize("max_steps", [0, 1])
    async def test_single_node_runs_with_tiny_max_steps(self, max_steps):
        g, _ = _chain(1, max_steps=max_steps)
        assert await g.execute({}) == {"i": 1}

    async def test_router_loop_counts_router_hops(self):
        calls = {"llm": 0, "tool": 0}

        @node(start=True)
        async def start():
            return {}

        @router
        async def llm():
            calls["llm"] += 1
            return {"choice": "tool"}

        @node
        async def tool():
            calls["tool"] += 1
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph(max_steps=5)
        for n in (start, llm, tool, end):
            g.add_node(n)
        g.add_edge(start, llm).add_router(sources=[tool], router=llm, destinations=[tool, end])
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == MAX_STEPS_MSG.format(5)
        assert calls == {"llm": 2, "tool": 2}

    async def test_parallel_layer_with_join_counts_a_step(self):
        calls = {"rt": 0, "a": 0, "b": 0}

        @node(start=True)
        async def start():
            return {}

        @router
        async def rt():
            calls["rt"] += 1
            return {"choices": ["a", "b"]}

        @node
        async def a():
            calls["a"] += 1
            return {}

        @node
        async def b():
            calls["b"] += 1
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph(max_steps=6)
        for n in (start, rt, a, b, end):
            g.add_node(n)
        g.add_edge(start, rt).add_router(sources=[], router=rt, destinations=[a, b, end])
        g.add_join([a, b], rt)
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == MAX_STEPS_MSG.format(6)
        assert calls == {"rt": 3, "a": 3, "b": 3}
