"""
Backpressure: a fast producer and a slow consumer on ``Callback(max_buffered=64)``.

The producer streams 20,000 tokens (``GRAPHAI_SLOW_TOKENS``); the consumer sleeps every 100
tokens. The buffer never holds more than 64 items, the producer is seen waiting, memory stays
flat, every token arrives in order, and ``graphai.callback.delivery_delay`` records the delays.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graphai import Callback, Graph, node
from tests.reliability._support import MB, Telemetry, bounded, rss_bytes, size_knob

TOKENS = size_knob("GRAPHAI_SLOW_TOKENS", 20_000)
BOUND = 64
RSS_LIMIT_MB = 10


def _graph(seen: list[int], tokens: int = TOKENS) -> Graph:
    @node(start=True, end=True, stream=True)
    async def firehose(callback: Any) -> dict[str, Any]:
        for i in range(tokens):
            await callback.acall(f"tok{i}")
            seen.append(callback.statistics().buffered)
        return {"sent": tokens}

    return Graph().add_node(firehose).compile()


async def test_slow_consumer_holds_the_producer_back(tel: Telemetry) -> None:
    producer_buffered: list[int] = []
    graph = _graph(producer_buffered)
    cb = Callback(max_buffered=BOUND)
    consumer_buffered: list[int] = []
    producer_waiting = False
    rss0 = rss_bytes()
    peak_rss = rss0

    async def consume() -> list[Any]:
        nonlocal producer_waiting, peak_rss
        items = []
        async for tok in cb.aiter():
            items.append(tok)
            if len(items) % 100 == 0:
                await asyncio.sleep(0.001)
                # the producer had the loop to itself meanwhile: buffer full, producer parked
                stats = cb.statistics()
                producer_waiting = producer_waiting or stats.producer_waiting
                if len(producer_buffered) < TOKENS:  # mid-stream (the end markers: see below)
                    consumer_buffered.append(stats.buffered)
            if len(items) % 5000 == 0:
                peak_rss = max(peak_rss, rss_bytes())
        return items

    consumer = asyncio.ensure_future(consume())
    result = await bounded(graph.execute({}, callback=cb), timeout=60, what="the producer")
    items = await bounded(consumer, timeout=60, what="the consumer")
    peak_rss = max(peak_rss, rss_bytes())

    assert result == {"sent": TOKENS}
    assert items[2:-2] == [f"tok{i}" for i in range(TOKENS)]
    assert items[-1] == "<graphai:END:>"
    assert max(producer_buffered) <= BOUND, f"producer saw {max(producer_buffered)} buffered"
    assert max(consumer_buffered) <= BOUND, f"consumer saw {max(consumer_buffered)} buffered"
    assert producer_waiting, "the producer never waited for the consumer"
    growth = (peak_rss - rss0) / MB
    assert growth < RSS_LIMIT_MB, f"RSS grew {growth:.1f} MB"

    delays = tel.points("graphai.callback.delivery_delay")
    assert len(delays) == 1
    assert delays[0].count > 0 and delays[0].sum > 0, (delays[0].count, delays[0].sum)


async def test_bound_holds_at_the_end_of_a_node(tel: Telemetry) -> None:
    """The node's end marker and END count as buffered items too: when a node returns with
    a full buffer, the run waits for the consumer instead of holding more than
    ``max_buffered`` items, and finishes once the consumer reads on."""
    n = 200
    graph = _graph([], tokens=n)
    cb = Callback(max_buffered=BOUND)
    run = asyncio.ensure_future(graph.execute({}, callback=cb))
    agen = cb.aiter()
    items = [await bounded(agen.__anext__()) for _ in range(2 + n - BOUND)]  # markers + tokens
    assert items[-1] == f"tok{n - BOUND - 1}"
    # exactly BOUND tokens remain: stop reading; the producer fills the buffer, then waits
    await asyncio.wait({run}, timeout=0.5)
    assert not run.done(), "the run finished while its end markers could not fit"
    stats = cb.statistics()
    buffered = stats.buffered
    assert buffered == BOUND and stats.producer_waiting
    rest = [tok async for tok in agen]
    assert await bounded(run) == {"sent": n}
    assert rest[-2:] == ["<graphai:firehose:end:>", "<graphai:END:>"]
    assert buffered <= BOUND, f"{buffered} items buffered with max_buffered={BOUND}"
