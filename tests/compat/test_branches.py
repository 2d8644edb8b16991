"""
Branch edges of graphai-lib 0.0.12 (section 7 checks 29, 30, section 2.6): side pipelines whose
output never enters the payload, conditions, ``wait=False``, and failures recorded in
``branch_errors`` instead of raised.
"""

import asyncio

from graphai import BranchError, Graph, MaxStepsError, node
from tests._stream import TIMEOUT


class TestBranches:
    """Branch pipelines never enter the payload; failures go to `branch_errors` (checks 29, 30)."""

    def _graph(self, side_fn, **branch_kwargs):
        @node(start=True)
        async def work():
            return {"w": 1}

        @node(end=True)
        async def done():
            return {"d": 1}

        side = node(side_fn, name=side_fn.__name__)
        g = Graph().add_node(work).add_node(done).add_node(side).add_edge(work, done)
        g.add_branch(work, side, **branch_kwargs)
        return g

    async def test_branch_runs_with_upstream_and_output_is_absent(self):
        seen = []

        async def side(upstream: dict, w: int):
            seen.append((upstream, w))
            return {"side_out": 1}

        g = self._graph(side)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert result == {"w": 1, "d": 1}
        assert seen == [({"node": "work", "output": {"w": 1}}, 1)]
        assert g.branch_errors == []

    async def test_branch_error_recorded(self):
        err = RuntimeError("x")

        async def explode():
            raise err

        g = self._graph(explode)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"w": 1, "d": 1}
        assert g.branch_errors == [BranchError("work", "explode", err)]

    async def test_branch_errors_reset_on_next_execute(self):
        calls = []

        async def explode():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("x")
            return {}

        g = self._graph(explode)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert len(g.branch_errors) == 1
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert g.branch_errors == []

    async def test_falsy_condition_skips(self):
        ran = []

        async def side():
            ran.append(1)
            return {}

        g = self._graph(side, condition=lambda output, state: output["w"] == 2)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ran == []

    async def test_async_condition_and_condition_error(self):
        ran = []

        async def side():
            ran.append(1)
            return {}

        async def cond(output, state):
            return output["w"] == 1

        g = self._graph(side, condition=cond)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ran == [1]

        boom = ValueError("cond")

        def bad(output, state):
            raise boom

        g = self._graph(side, condition=bad)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"w": 1, "d": 1}
        assert g.branch_errors == [BranchError("work", "side", boom)]
        assert ran == [1]

    async def test_detached_branch_finishes_before_execute_returns(self):
        finished = []

        async def side():
            await asyncio.sleep(0.05)
            finished.append(1)
            return {}

        g = self._graph(side, wait=False)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert finished == [1]

    async def test_pipeline_follows_edges_and_stops_on_success_false(self):
        ran = []

        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {}

        @node
        async def p1():
            ran.append("p1")
            return {"success": False}

        @node
        async def p2():
            ran.append("p2")
            return {}

        g = Graph().add_node(work).add_node(done).add_node(p1).add_node(p2)
        g.add_edge(work, done).add_branch(work, p1).add_edge(p1, p2)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ran == ["p1"]
        assert g.branch_errors == []

    async def test_pipeline_max_steps_recorded(self):
        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {}

        @node
        async def p1():
            return {}

        @node
        async def p2():
            return {}

        g = Graph(max_steps=2).add_node(work).add_node(done).add_node(p1).add_node(p2)
        g.add_edge(work, done).add_branch(work, p1).add_edge(p1, p2).add_edge(p2, p1)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {}
        (be,) = g.branch_errors
        assert (be.source, be.destination) == ("work", "p1")
        assert isinstance(be.error, MaxStepsError)
        assert str(be.error) == (
            "Max steps reached in branch pipeline: 2. You can modify this by setting `max_steps` "
            "when initializing the Graph object."
        )
