"""Errors in branches (hardening cases 6 and 8): each run of one ``Graph`` reports exactly its
own branch errors (``asyncio.gather``, sequential runs, ``execute_many``); an ``Exception`` in a
branch is recorded, a ``BaseException`` in a detached branch is re-raised by ``execute()`` and
its spans end.

Every case here failed on an earlier engine; every wait is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import BranchError, Graph, node
from graphai.telemetry import names as N
from tests._otel import Signals
from tests._stream import TIMEOUT


def _graph_with_failing_branch() -> Graph:
    @node(start=True)
    async def work(tag: str) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"seen": tag}

    @node
    async def side(tag: str) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        if tag.startswith("bad"):
            raise RuntimeError(tag)
        return {}

    @node(end=True)
    async def finish() -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {}

    return (
        Graph()
        .add_node(work)
        .add_node(side)
        .add_node(finish)
        .add_edge(work, finish)
        .add_branch(work, side, wait=False)
        .compile()
    )


class TestBranchErrorsPerRun:
    """Concurrent runs of one Graph each report exactly their own branch errors."""

    async def test_gather(self) -> None:
        g = _graph_with_failing_branch()

        async def one(tag: str) -> list[str]:
            await g.execute({"tag": tag})
            return [str(be.error) for be in g.branch_errors]

        got = await asyncio.wait_for(
            asyncio.gather(one("bad-1"), one("good-1"), one("bad-2"), one("good-2")), TIMEOUT
        )
        assert got == [["bad-1"], [], ["bad-2"], []]

    async def test_sequential_runs_in_one_task_still_reset(self) -> None:
        g = _graph_with_failing_branch()
        await g.execute({"tag": "bad-x"})
        assert [str(be.error) for be in g.branch_errors] == ["bad-x"]
        await g.execute({"tag": "good"})
        assert g.branch_errors == []

    async def test_execute_many_reports_every_run_once(self) -> None:
        g = _graph_with_failing_branch()
        tags = ["bad-0", "good-1", "bad-2", "good-3", "bad-4"]
        await asyncio.wait_for(g.execute_many([{"tag": t} for t in tags], concurrency=5), TIMEOUT)
        assert [str(be.error) for be in g.branch_errors] == ["bad-0", "bad-2", "bad-4"]


class Fatal(BaseException):
    """Not an Exception: must not be swallowed like a branch error."""


class TestBaseExceptionInDetachedBranch:
    """A BaseException in a detached branch is re-raised by execute(); its spans end."""

    async def test_reraised_and_spans_end(self, signals: Signals) -> None:
        @node(start=True)
        async def work() -> dict[str, Any]:
            return {}

        @node
        async def doomed() -> dict[str, Any]:
            raise Fatal("stop")

        @node(end=True)
        async def finish() -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {}

        g = (
            Graph(name="fb")
            .add_node(work)
            .add_node(doomed)
            .add_node(finish)
            .add_edge(work, finish)
            .add_branch(work, doomed, wait=False)
            .compile()
        )
        with pytest.raises(Fatal, match="stop"):
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert g.branch_errors == []
        assert signals.span("doomed").attributes[N.NODE_OUTCOME] == N.OUTCOME_ERROR
        assert signals.span("invoke_workflow fb").attributes[N.RUN_OUTCOME] == N.OUTCOME_ERROR

    async def test_exception_still_recorded_not_raised(self) -> None:
        g = _graph_with_failing_branch()
        await asyncio.wait_for(g.execute({"tag": "bad"}), TIMEOUT)
        (be,) = g.branch_errors
        assert isinstance(be, BranchError) and isinstance(be.error, RuntimeError)
