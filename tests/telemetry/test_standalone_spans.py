"""A ``Callback`` used outside a graph: ``start_node()``/``end_node()`` give a node span under the
current span; a callback dropped with a node open ends that span as ``cancelled``."""

from __future__ import annotations

import asyncio

from graphai import Callback
from tests._otel import Signals
from tests._stream import drain


class TestStandaloneCallback:
    """start_node/end_node on a Callback used outside a graph yield a span under the current one."""

    async def test_standalone_span(self, signals: Signals) -> None:
        cb = Callback()
        tracer = signals.tp.get_tracer("app")
        with tracer.start_as_current_span("handler") as parent:
            await cb.start_node("n")
            await cb.acall("hello")
            await cb.end_node("n")
            await cb.close()
        assert await asyncio.wait_for(drain(cb), 5) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "hello",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]
        span = signals.span("n")
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.attributes["graphai.node.output.tokens"] == 1
        assert span.attributes["graphai.node.outcome"] == "ok"

    async def test_dropped_callback_ends_open_standalone_spans(self, signals: Signals) -> None:
        import gc

        import graphai.telemetry as t

        cb = Callback()
        await cb.start_node("orphan")
        await cb.acall("x")
        assert [s["node"] for s in t.active_streams()] == ["orphan"]
        del cb
        gc.collect()
        assert t.active_streams() == []
        span = signals.span("orphan")
        assert span.attributes["graphai.node.outcome"] == "cancelled"
        assert span.attributes["graphai.node.output.tokens"] == 1
