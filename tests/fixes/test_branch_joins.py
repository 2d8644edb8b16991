"""Joins inside branch pipelines (fix 9): the join's destination runs once, with the merged
payload."""

import asyncio

from graphai import Graph, node
from tests._stream import TIMEOUT


class TestFix09JoinsInsideBranches:
    """A join inside a branch pipeline runs its destination once, with the merged payload."""

    async def test_join_in_pipeline_runs(self):
        """Fails on upstream because branch pipelines ignore join edges: the forked paths end at
        the join sources and `joined` never runs."""
        ran = []

        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {"done": True}

        @node
        async def side():
            return {}

        @node
        async def a():
            return {"a": 1}

        @node
        async def b():
            return {"b": 2}

        @node
        async def joined(a: int, b: int):
            ran.append((a, b))
            return {}

        g = Graph()
        for n in (work, done, side, a, b, joined):
            g.add_node(n)
        g.add_edge(work, done).add_branch(work, side)
        g.add_parallel(side, [a, b]).add_join([a, b], joined)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert result == {"done": True}
        assert g.branch_errors == []
        assert ran == [(1, 2)]
