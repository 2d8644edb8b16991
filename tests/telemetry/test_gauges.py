"""Gauges of live node runs: ``graphai.node.active`` and ``graphai.stream.stalled`` read the node
runs in flight (``active_streams()`` lists them) and return to zero when the runs end."""

from __future__ import annotations

import asyncio

from graphai import Callback, Graph, node
from graphai.telemetry import env
from graphai.telemetry import names as N
from tests._otel import make_signals


class TestGauges:
    """Active nodes and stalled streams read the live node runs, and return to zero."""

    async def test_active_and_stalled(self) -> None:
        s = make_signals(env.Settings(stall_after_s=0.05))
        try:
            release = asyncio.Event()
            streaming = asyncio.Event()

            @node(start=True, end=True, stream=True)
            async def slow(callback) -> dict:
                await callback.acall("t")
                streaming.set()
                await release.wait()
                return {}

            cb = Callback()
            task = asyncio.ensure_future(Graph(name="gz").add_node(slow()).execute({}, callback=cb))
            await asyncio.wait_for(streaming.wait(), 5)
            await asyncio.sleep(0.1)
            assert s.point(N.NODE_ACTIVE, graphai__node__name="slow").value == 1
            assert s.point(N.STREAM_STALLED, graphai__node__name="slow").value == 1
            import graphai.telemetry as t

            live = t.active_streams()
            assert [(x["graph"], x["node"], x["tokens"]) for x in live] == [("gz", "slow", 1)]
            assert live[0]["since_last_token_s"] >= 0.09
            release.set()
            await asyncio.wait_for(task, 5)
            assert s.point(N.NODE_ACTIVE, graphai__node__name="slow").value == 0
            assert s.point(N.STREAM_STALLED, graphai__node__name="slow").value == 0
            assert t.active_streams() == []
        finally:
            s.close()
