"""Span status and outcomes: a raising node gives status ERROR, ``error.type`` and an
``exception`` event on its span and on the run's; a cancelled run gives outcome ``cancelled``
with status UNSET; the stream ends either way."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode

from graphai import Callback, Graph, node
from tests._otel import Signals
from tests._stream import drain


class TestStatus:
    """Errors: ERROR + error.type + exception event. Cancellation: outcome cancelled, UNSET."""

    async def test_error(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def boom(callback) -> dict:
            await callback.acall("x")
            raise KeyError("nope")

        cb = Callback()
        g = Graph(name="err").add_node(boom())
        consumer = asyncio.ensure_future(asyncio.wait_for(drain(cb), 5))
        with pytest.raises(KeyError):
            await g.execute({}, callback=cb)
        toks = await consumer
        assert toks == ["<graphai:boom:start:>", "<graphai:boom:>", "x", "<graphai:boom:end:>", "<graphai:END:>"]
        span = signals.span("boom")
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "KeyError"
        assert span.attributes["graphai.node.outcome"] == "error"
        assert [e.name for e in span.events][-1] == "exception"
        run = signals.span("invoke_workflow err")
        assert run.attributes["graphai.run.outcome"] == "error"
        assert run.attributes["error.type"] == "KeyError"
        assert run.status.status_code is StatusCode.ERROR

    async def test_cancelled(self, signals: Signals) -> None:
        started = asyncio.Event()

        @node(start=True, end=True, stream=True)
        async def hang(callback) -> dict:
            await callback.acall("x")
            started.set()
            await asyncio.sleep(30)
            return {}

        cb = Callback()
        task = asyncio.ensure_future(Graph(name="c").add_node(hang()).execute({}, callback=cb))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await asyncio.wait_for(drain(cb), 5))[-2:] == ["<graphai:hang:end:>", "<graphai:END:>"]
        span = signals.span("hang")
        assert span.attributes["graphai.node.outcome"] == "cancelled"
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in span.attributes
        assert signals.span("invoke_workflow c").attributes["graphai.run.outcome"] == "cancelled"
