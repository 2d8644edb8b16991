"""A standalone callback dropped with nodes still open: their spans end as ``cancelled`` at the
instrumentation's next safe point (a graph run, a standalone start, a gauge or
``active_streams()`` snapshot), never inside a finalizer: garbage collection can run in any
thread at any allocation, including inside an SDK processor's lock, where ending a span would
deadlock."""

from __future__ import annotations

import gc
import threading
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

import graphai.telemetry as t
from graphai import Callback, Graph, node
from graphai._stream.base import StreamBase
from graphai.telemetry import names as N
from tests._otel import Signals


class EndedIn(SpanProcessor):
    """Records, for each span ended, whether garbage collection was running."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, bool]] = []
        self.collecting = False

    def on_end(self, span: Any) -> None:
        self.ended.append((span.name, self.collecting))


async def _orphan(name: str) -> None:
    cb = Callback()
    await cb.start_node(name)
    await cb.acall("x")
    # cb goes out of scope with the node open


class TestNoFinalizerTelemetry:
    """No class of the stream has a finalizer; the orphan ends at a safe point."""

    def test_no_del_on_stream_classes(self) -> None:
        import graphai.callback as cbmod

        for cls in (StreamBase, cbmod.Callback, cbmod.EventCallback):
            assert not any("__del__" in vars(k) for k in cls.__mro__), cls

    async def test_ends_at_the_next_snapshot_not_in_gc(self, signals: Signals) -> None:
        rec = EndedIn()
        signals.tp.add_span_processor(rec)

        def on_gc(phase: str, info: dict[str, Any]) -> None:
            rec.collecting = phase == "start"

        gc.callbacks.append(on_gc)
        try:
            await _orphan("orphan")
            gc.collect()
            assert rec.ended == []  # nothing ended while collecting (nor after, yet)
            assert t.active_streams() == []  # the snapshot is the safe point
        finally:
            gc.callbacks.remove(on_gc)
        assert rec.ended == [("orphan", False)]
        span = signals.span("orphan")
        assert span.attributes is not None
        assert span.attributes[N.NODE_OUTCOME] == "cancelled"
        assert span.attributes[N.NODE_OUTPUT_TOKENS] == 1

    async def test_ends_at_the_next_graph_run(self, signals: Signals) -> None:
        await _orphan("orphan")
        gc.collect()
        assert [s.name for s in signals.spans()] == []

        @node(start=True, end=True)
        async def one() -> dict[str, Any]:
            return {"ok": 1}

        assert await Graph(name="g").add_node(one).execute({}) == {"ok": 1}
        assert [s.name for s in signals.spans()] == ["orphan", "one", "invoke_workflow g"]
        assert signals.span("orphan").attributes[N.NODE_OUTCOME] == "cancelled"  # type: ignore[index]

    async def test_active_gauge_back_to_zero(self, signals: Signals) -> None:
        await _orphan("orphan")
        gc.collect()
        active = {
            p.attributes[N.NODE_NAME]: p.value  # type: ignore[index]
            for p in signals.points(N.NODE_ACTIVE)
        }
        assert active == {"orphan": 0}

    async def test_a_closed_callback_is_not_ended_twice(self, signals: Signals) -> None:
        cb = Callback()
        await cb.start_node("done")
        await cb.end_node("done")
        del cb
        gc.collect()
        assert t.active_streams() == []
        assert [s.name for s in signals.spans()] == ["done"]
        assert signals.span("done").attributes[N.NODE_OUTCOME] == "ok"  # type: ignore[index]

    async def test_orphans_dropped_in_another_thread(self, signals: Signals) -> None:
        # the weakref callback runs where the last reference goes: here, another thread
        box: list[Any] = []

        async def keep() -> None:
            cb = Callback()
            await cb.start_node("far")
            box.append(cb)

        await keep()
        th = threading.Thread(target=box.clear)
        th.start()
        th.join(5)
        gc.collect()
        assert t.active_streams() == []
        assert signals.span("far").attributes[N.NODE_OUTCOME] == "cancelled"  # type: ignore[index]
