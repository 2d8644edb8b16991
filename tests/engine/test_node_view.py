"""A node's callback view belongs to its node run (hardening cases 4 and 5): tokens sent
through it after the node ended are dropped and counted, never shown inside another node's
markers nor on the ended span; ``start_node()``/``end_node()`` on it open and close well-nested
sub-steps.

Every case here failed on an earlier engine; every wait is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import Callback, Graph, node
from graphai.telemetry import names as N
from tests._otel import Signals
from tests._stream import TIMEOUT, drain


class TestLateTokens:
    """Tokens sent through a node's view after the node ended are dropped and counted: never
    inside the next node's markers, never on the ended span."""

    @pytest.mark.parametrize("through", ["view", "root"])
    async def test_dropped_counted_never_misattributed(
        self, through: str, signals: Signals, caplog: pytest.LogCaptureFixture
    ) -> None:
        cb = Callback()
        left: list[asyncio.Task[Any]] = []
        go_on = asyncio.Event()

        async def linger(target: Any) -> None:
            await go_on.wait()
            for i in range(3):
                await target.acall(f"late{i}")
            target("late-sync")

        @node(start=True, stream=True)
        async def first(callback: Any) -> dict[str, Any]:
            await callback.acall("f")
            left.append(asyncio.ensure_future(linger(callback if through == "view" else cb)))
            return {}

        @node(end=True, stream=True)
        async def second(callback: Any) -> dict[str, Any]:
            go_on.set()
            await asyncio.wait_for(left[0], TIMEOUT)  # the late tokens arrive while we stream
            await callback.acall("s")
            return {}

        g = Graph(name="late").add_node(first).add_node(second).add_edge(first, second).compile()
        consumer = asyncio.ensure_future(drain(cb))
        with caplog.at_level("WARNING", logger="graphai"):
            await asyncio.wait_for(g.execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == [
            "<graphai:first:start:>",
            "<graphai:first:>",
            "f",
            "<graphai:first:end:>",
            "<graphai:second:start:>",
            "<graphai:second:>",
            "s",
            "<graphai:second:end:>",
            "<graphai:END:>",
        ]
        assert signals.span("first").attributes[N.NODE_OUTPUT_TOKENS] == 1
        assert signals.span("second").attributes[N.NODE_OUTPUT_TOKENS] == 1
        (pt,) = signals.points(N.NODE_LATE_TOKENS)
        assert pt.value == 4 and pt.attributes[N.NODE_NAME] == "first"
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        assert msgs == ["callback.late_token node='first'"]
        sdk = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
        assert sdk == []  # no "ended span" warnings


class TestSubStepsOnOwnView:
    """start_node()/end_node() on a node's own view open well-nested sub-steps."""

    async def test_nested_markers_and_child_span(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def outer(callback: Any) -> dict[str, Any]:
            await callback.acall("a")
            await callback.start_node("sub")
            await callback.acall("b")
            await callback.end_node("sub")
            await callback.start_node("left_open")
            await callback.acall("c")
            return {}

        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        await asyncio.wait_for(Graph(name="subs").add_node(outer).execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == [
            "<graphai:outer:start:>",
            "<graphai:outer:>",
            "a",
            "<graphai:sub:start:>",
            "<graphai:sub:>",
            "b",
            "<graphai:sub:end:>",
            "<graphai:left_open:start:>",
            "<graphai:left_open:>",
            "c",
            "<graphai:left_open:end:>",  # closed by the engine before the node's own end
            "<graphai:outer:end:>",
            "<graphai:END:>",
        ]
        outer_span = signals.span("outer")
        for name in ("sub", "left_open"):
            sub = signals.span(name)
            assert sub.parent is not None and sub.parent.span_id == outer_span.context.span_id
            assert sub.attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        assert outer_span.attributes[N.NODE_OUTPUT_TOKENS] == 3

    @pytest.mark.parametrize("name", ["outer", "other"])
    async def test_ending_what_is_not_an_open_sub_step_is_a_clear_error(self, name: str) -> None:
        @node(start=True, end=True, stream=True)
        async def outer(callback: Any) -> dict[str, Any]:
            await callback.end_node(name)
            return {}

        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        with pytest.raises(ValueError) as info:
            await asyncio.wait_for(Graph().add_node(outer).execute({}, callback=cb), TIMEOUT)
        assert str(info.value) == (
            f"end_node({name!r}) on the view of node 'outer': it ends the innermost open "
            "sub-step (open: none); the engine ends the node itself"
        )
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == [
            "<graphai:outer:start:>",
            "<graphai:outer:>",
            "<graphai:outer:end:>",
            "<graphai:END:>",
        ]
