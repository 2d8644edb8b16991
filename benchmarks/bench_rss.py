"""
Peak RSS growth while one node streams 1 M tokens with telemetry on (target: <= 20 MB).

Telemetry: SDK ``TracerProvider`` with a ``BatchSpanProcessor`` over an exporter that discards
what it gets, ``MeterProvider`` with an ``InMemoryMetricReader``, passed in with
``graphai.telemetry.instrument(...)``. A consumer drains the stream concurrently (without keeping
the tokens), so what grows is what the engine and its telemetry keep per token.

Peak RSS is sampled by a thread every 2 ms (psutil, else ``/proc/self/statm``) from just before
the run until just after it; growth = peak - RSS before the run (after a warm-up run).

Usage: ``python benchmarks/bench_rss.py [--tokens N]``; prints one JSON object:
``{"rss_growth_mb": ..., "tokens": 1000000, "seconds": ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

TARGET_MB = 20.0
YIELD_EVERY = 256  # the producer gives the consumer the loop this often (an LLM stream's awaits)


def _rss_reader() -> Callable[[], int]:
    try:
        import psutil

        proc = psutil.Process()
        return lambda: int(proc.memory_info().rss)
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE")

        def statm() -> int:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page

        return statm


class PeakSampler:
    """Samples RSS in a thread; ``peak`` is the largest value seen."""

    def __init__(self, read: Callable[[], int], interval: float = 0.002) -> None:
        self.read = read
        self.interval = interval
        self.peak = read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def _providers() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DiscardExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DiscardExporter()))
    return tp, MeterProvider(metric_readers=[InMemoryMetricReader()])


async def _stream(n: int) -> int:
    from graphai import Callback, Graph, node

    @node(start=True, end=True, stream=True)
    async def firehose(callback: Any) -> dict[str, Any]:
        for i in range(n):
            await callback.acall("tok")
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        return {"sent": n}

    graph = Graph().add_node(firehose)
    cb = Callback()

    async def consume() -> int:
        count = 0
        async for _ in cb.aiter():
            count += 1
        return count

    consumer = asyncio.ensure_future(consume())
    result = await graph.execute({}, callback=cb)
    received = await consumer
    if result != {"sent": n} or received != n + 4:  # + start, id, end markers and END
        raise SystemExit(f"bench_rss: wrong stream ({result}, {received} items)")
    return received


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=1_000_000, help="tokens to stream (default 1M)")
    args = ap.parse_args(argv)

    import graphai.telemetry as telemetry

    tp, mp = _providers()
    telemetry.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        asyncio.run(_stream(min(args.tokens, 20_000)))  # warm-up: imports, caches, allocator
        gc.collect()
        read = _rss_reader()
        before = read()
        with PeakSampler(read) as sampler:
            t0 = time.perf_counter()
            asyncio.run(_stream(args.tokens))
            seconds = time.perf_counter() - t0
    finally:
        telemetry.instrument()
        tp.shutdown()
        mp.shutdown()
    growth = (sampler.peak - before) / (1024 * 1024)
    print(
        json.dumps(
            {"rss_growth_mb": round(growth, 2), "tokens": args.tokens, "seconds": round(seconds, 3)}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
