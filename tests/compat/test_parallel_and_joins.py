"""
Parallel fan-out and joins of graphai-lib 0.0.12 (section 7 checks 24-27, section 2.5):
concurrency, joins running their destination once, merge order by edge order, router
``choices``, errors in a path, join sources outside a parallel path.
"""

import asyncio
import time

import pytest

from graphai import Graph, NoOutgoingEdgeError, node, router
from tests._stream import TIMEOUT


class TestParallel:
    """Fan-out runs concurrently, joins run once, merges follow edge order (checks 24-27)."""

    async def test_fork_join_runs_concurrently_and_end_once(self):
        ends = []

        @node(start=True)
        async def start():
            return {}

        @node
        async def a():
            await asyncio.sleep(0.2)
            return {"a": 1}

        @node
        async def b():
            await asyncio.sleep(0.2)
            return {"b": 2}

        @node(end=True)
        async def end(a: int, b: int):
            ends.append((a, b))
            return {"sum": a + b}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_parallel(start, [a, b]).add_join([a, b], end)
        t0 = time.perf_counter()
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.35
        assert result == {"a": 1, "b": 2, "sum": 3}
        assert ends == [(1, 2)]

    async def test_fork_without_join_runs_shared_end_per_path(self):
        ends = []

        @node(start=True)
        async def start():
            return {}

        @node
        async def a():
            return {"a": 1}

        @node
        async def b():
            return {"b": 2}

        @node(end=True)
        async def end():
            ends.append("end")
            return {"e": len(ends)}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_parallel(start, [a, b]).add_edge(a, end).add_edge(b, end)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ends == ["end", "end"]
        assert result["a"] == 1 and result["b"] == 2
        assert set(result) == {"a", "b", "e"}

    @pytest.mark.parametrize(("order", "expected"), [(("a", "b"), "b"), (("b", "a"), "a")])
    async def test_merge_conflict_follows_edge_order(self, order, expected):
        @node(start=True)
        async def start():
            return {}

        @node(end=True)
        async def a():
            return {"k": "a"}

        @node(end=True)
        async def b():
            await asyncio.sleep(0.05)  # b completes last in both orders
            return {"k": "b"}

        g = Graph()
        for n in (start, a, b):
            g.add_node(n)
        for name in order:
            g.add_edge(start, name)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert result == {"k": expected}

    async def test_duplicate_edges_fork(self):
        ran = []

        @node(start=True)
        async def start():
            return {}

        @node(end=True)
        async def end():
            ran.append("end")
            return {}

        g = Graph().add_node(start).add_node(end).add_edge(start, end).add_edge(start, end)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {}
        assert ran == ["end", "end"]

    async def test_router_choices_with_duplicates_and_join_back(self):
        calls = {"router": 0, "a": 0, "b": 0}

        @node(start=True)
        async def start():
            return {}

        @router
        async def rt():
            calls["router"] += 1
            if calls["router"] == 1:
                return {"choices": ["a", "b", "a"]}
            return {"choice": "end"}

        @node
        async def a():
            calls["a"] += 1
            return {"a": calls["a"]}

        @node
        async def b():
            calls["b"] += 1
            return {"b": 1}

        @node(end=True)
        async def end():
            return {"done": True}

        g = Graph()
        for n in (start, rt, a, b, end):
            g.add_node(n)
        g.add_edge(start, rt).add_router(sources=[], router=rt, destinations=[a, b, end])
        g.add_join([a, b], rt)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert calls == {"router": 2, "a": 2, "b": 1}
        assert result["done"] is True
        assert result["choices"] == ["a", "b", "a"]
        assert result["choice"] == "end"

    async def test_nodes_with_edge_but_not_chosen_do_not_run(self):
        ran = []

        @router(start=True)
        async def rt():
            return {"choices": ["a", "b"]}

        def mk(name):
            async def f():
                ran.append(name)
                return {name: 1}

            return node(f, name=name, end=True)

        a, b, c = mk("a"), mk("b"), mk("c")
        g = Graph().add_node(rt).add_node(a).add_node(b).add_node(c)
        g.add_router(sources=[], router=rt, destinations=[a, b, c])
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert sorted(ran) == ["a", "b"]
        assert result == {"choices": ["a", "b"], "a": 1, "b": 1}

    async def test_exception_in_a_path_propagates(self):
        @node(start=True)
        async def start():
            return {}

        @node(end=True)
        async def a():
            raise RuntimeError("path failed")

        @node(end=True)
        async def b():
            return {}

        g = Graph().add_node(start).add_node(a).add_node(b).add_parallel(start, [a, b])
        with pytest.raises(RuntimeError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == "path failed"

    async def test_join_source_on_a_non_parallel_path_has_no_successor(self):
        @node(start=True)
        async def a():
            return {}

        @node
        async def b():
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, end)
        g.add_join([a, b], end)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {}
        g2 = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, b).add_join([b], end)
        with pytest.raises(NoOutgoingEdgeError) as ei:
            await asyncio.wait_for(g2.execute({}), TIMEOUT)
        assert str(ei.value) == "No outgoing edge found for current node 'b'."
