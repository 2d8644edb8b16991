"""``max_steps`` bounds every path (hardening case 7): a cycle through waited or detached
branches, even one made of branch edges only, ends with ``MaxStepsError`` recorded in
``branch_errors``, and a deep waited cycle never raises ``RecursionError``.

Every case here failed on an earlier engine; every wait is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import Graph, MaxStepsError, node
from tests._stream import TIMEOUT


def _cyclic_branch_graph(max_steps: int, wait: bool) -> tuple[Graph, list[int]]:
    ran: list[int] = []

    @node(start=True)
    async def a() -> dict[str, Any]:
        return {}

    @node
    async def c() -> dict[str, Any]:
        ran.append(1)
        return {}

    @node(end=True)
    async def b() -> dict[str, Any]:
        return {}

    g = (
        Graph(max_steps=max_steps)
        .add_node(a)
        .add_node(b)
        .add_node(c)
        .add_edge(a, b)
        .add_edge(c, a)  # inside the pipeline, a runs again and starts the branch again
        .add_branch(a, c, wait=wait)
    )
    return g.compile(), ran


class TestMaxStepsBoundsBranchCycles:
    """A cycle through waited or detached branches ends with the max-steps error."""

    @pytest.mark.parametrize("wait", [True, False], ids=["waited", "detached"])
    async def test_cycle_ends(self, wait: bool) -> None:
        g, ran = _cyclic_branch_graph(10, wait)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        errs = g.branch_errors
        assert {type(be.error) for be in errs} == {MaxStepsError}
        assert len(errs) <= 2  # the innermost pipeline and the one that started it
        assert str(errs[0].error).startswith("Max steps reached in branch pipeline: 10.")
        assert (errs[0].source, errs[0].destination) == ("a", "c")
        assert 1 <= len(ran) <= 10

    async def test_deep_waited_cycle_no_recursion_error(self) -> None:
        g, ran = _cyclic_branch_graph(600, True)
        await asyncio.wait_for(g.execute({}), TIMEOUT * 4)
        assert {type(be.error) for be in g.branch_errors} == {MaxStepsError}
        assert len(ran) <= 600

    @pytest.mark.parametrize("wait", [True, False], ids=["waited", "detached"])
    async def test_cycle_of_branch_edges_only(self, wait: bool) -> None:
        """c's only way on is a branch back to itself: each branch hop counts as a step."""
        ran: list[int] = []

        @node(start=True)
        async def a() -> dict[str, Any]:
            return {}

        @node
        async def c() -> dict[str, Any]:
            ran.append(1)
            return {}

        @node(end=True)
        async def b() -> dict[str, Any]:
            return {}

        g = (
            Graph(max_steps=5)
            .add_node(a)
            .add_node(b)
            .add_node(c)
            .add_edge(a, b)
            .add_branch(a, c, wait=wait)
            .add_branch(c, c, wait=wait)
            .compile()
        )
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        await asyncio.wait_for(g.wait_for_branches(), TIMEOUT)
        (be,) = g.branch_errors
        assert isinstance(be.error, MaxStepsError)
        assert (be.source, be.destination) == ("c", "c")
        assert len(ran) == 5
