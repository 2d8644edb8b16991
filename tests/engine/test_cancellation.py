"""Cancellation during backpressure and during cleanup (hardening cases 1 to 3): a cancelled
producer cancels only itself, a node's end marker is never lost to a cancellation, and cleanup
that is itself cancelled still ends the run span and the node spans.

Every case here failed on an earlier engine; every wait is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import Callback, Graph, node
from graphai.telemetry import names as N
from tests._otel import Signals
from tests._stream import TIMEOUT, drain


async def _until(pred: Any, what: str) -> None:
    """Poll ``pred()`` every millisecond, at most ``TIMEOUT`` seconds."""
    async with asyncio.timeout(TIMEOUT):
        while not pred():
            await asyncio.sleep(0.001)
    assert pred(), what


class TestCancelledProducerAlone:
    """Cancelling one producer that waits for buffer space cancels only that producer."""

    async def test_callback_level(self) -> None:
        cb = Callback(max_buffered=1)
        await cb.acall("first")  # the buffer is full now
        waiting = [asyncio.ensure_future(cb.acall(f"t{i}")) for i in range(3)]
        await _until(lambda: cb.statistics().producer_waiting, "producers wait for space")
        waiting[0].cancel()
        consumer = asyncio.ensure_future(drain(cb))
        done = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), TIMEOUT)
        assert isinstance(done[0], asyncio.CancelledError)
        assert done[1:] == [None, None]
        await cb.close()
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == ["first", "t1", "t2", "<graphai:END:>"]

    async def test_timeout_around_acall_in_parallel_nodes(self) -> None:
        @node(start=True)
        async def src() -> dict[str, Any]:
            return {}

        @node(stream=True)
        async def impatient(callback: Any) -> dict[str, Any]:
            try:
                await asyncio.wait_for(callback.acall("late"), 0.05)
            except TimeoutError:
                return {"impatient": "timed out"}
            return {"impatient": "sent"}

        @node(stream=True)
        async def patient(callback: Any) -> dict[str, Any]:
            await callback.acall("p1")
            await callback.acall("p2")
            return {"patient": "sent"}

        @node(end=True)
        async def done() -> dict[str, Any]:
            return {}

        g = (
            Graph()
            .add_node(src)
            .add_node(impatient)
            .add_node(patient)
            .add_node(done)
            .add_parallel(src, [impatient, patient])
            .add_join([impatient, patient], done)
            .compile()
        )
        cb = Callback(max_buffered=1)
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await asyncio.sleep(0.2)  # the impatient producer times out while both wait
        consumer = asyncio.ensure_future(drain(cb))
        result = await asyncio.wait_for(run, TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert result["patient"] == "sent"
        assert result["impatient"] == "timed out"
        assert [t for t in items if not t.startswith("<graphai:")] == ["p1", "p2"]
        assert items[-1] == "<graphai:END:>"


class TestEndMarkerNeverLost:
    """A cancel that lands while a node's end marker waits for space still delivers it."""

    async def test_cancel_while_end_marker_waits(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def talk(callback: Any) -> dict[str, Any]:
            callback("t1")  # sync calls cannot wait: the buffer is over its bound now
            callback("t2")
            return {}

        g = Graph().add_node(talk).compile()
        cb = Callback(max_buffered=1)
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await _until(lambda: cb.statistics().producer_waiting, "end marker waits for space")
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, TIMEOUT)
        items = await asyncio.wait_for(drain(cb), TIMEOUT)
        assert items == [
            "<graphai:talk:start:>",
            "<graphai:talk:>",
            "t1",
            "t2",
            "<graphai:talk:end:>",
            "<graphai:END:>",
        ]
        assert signals.span("talk").attributes[N.NODE_OUTCOME] == N.OUTCOME_CANCELLED


class _SlowClose(Callback):
    """A user callback whose close() suspends (and is cancelled there)."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = asyncio.Event()

    async def close(self) -> None:
        self.closing.set()
        await asyncio.sleep(30)
        await super().close()


class _SlowEndNode(Callback):
    """A user callback whose end_node() suspends (and is cancelled there)."""

    def __init__(self) -> None:
        super().__init__()
        self.ending = asyncio.Event()

    async def end_node(self, node_name: str) -> None:
        self.ending.set()
        await asyncio.sleep(30)


def _active(signals: Signals) -> list[int]:
    return [p.value for p in signals.points(N.NODE_ACTIVE)]


class TestCancelledCleanupEndsSpans:
    """Cleanup that is itself cancelled still ends the run span and the node spans."""

    async def test_close_cancelled_after_success(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def talk(callback: Any) -> dict[str, Any]:
            await callback.acall("hi")
            return {"ok": True}

        g = Graph(name="cc").add_node(talk).compile()
        cb = _SlowClose()
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await asyncio.wait_for(cb.closing.wait(), TIMEOUT)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, TIMEOUT)
        span = signals.span("invoke_workflow cc")
        assert span.end_time is not None
        assert span.attributes[N.RUN_OUTCOME] == N.OUTCOME_CANCELLED
        assert signals.span("talk").attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        assert set(_active(signals)) <= {0}

    async def test_end_node_cancelled_after_node_error(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def boom(callback: Any) -> dict[str, Any]:
            raise ValueError("nope")

        g = Graph(name="ce").add_node(boom).compile()
        cb = _SlowEndNode()
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await asyncio.wait_for(cb.ending.wait(), TIMEOUT)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, TIMEOUT)
        node_span = signals.span("boom")
        assert node_span.end_time is not None
        assert node_span.attributes[N.NODE_OUTCOME] == N.OUTCOME_ERROR
        run_span = signals.span("invoke_workflow ce")
        assert run_span.attributes[N.RUN_OUTCOME] == N.OUTCOME_CANCELLED
        assert set(_active(signals)) <= {0}
