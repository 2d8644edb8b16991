"""
Shared pieces of the reliability suite: explicit in-memory OTel providers with a span
start/end counter, metric readers, bounded waits and RSS probes.

Never the global providers: each test passes its own to ``graphai.telemetry.instrument`` and
re-instruments with the globals at teardown.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import graphai.telemetry as telemetry
from graphai.telemetry import env
from tests._otel import Signals

T = TypeVar("T")

WAIT_S = 5.0
"""Upper bound of any single wait in a test (a hang fails instead of blocking the suite)."""

RUN_SPAN = "invoke_workflow graph"


def size_knob(name: str, default: int) -> int:
    """An integer size from the environment (``GRAPHAI_FAULT_RUNS`` and friends)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw)
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a positive integer")
    return value


async def bounded(aw: Awaitable[T], timeout: float = WAIT_S, what: str = "") -> T:
    """Await ``aw`` for at most ``timeout`` seconds (like ``asyncio.wait_for``, but a
    ``TimeoutError`` raised *by* ``aw`` passes through and a hang fails naming ``what``)."""
    fut = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({fut}, timeout=timeout)
    if not done:
        fut.cancel()
        await asyncio.wait({fut}, timeout=1.0)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or aw!r}")
    return fut.result()


async def until(cond: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    """Poll ``cond`` on the event loop until it holds (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond!r}")
        await asyncio.sleep(0.001)


class SpanCounter(SpanProcessor):
    """Counts ``on_start`` / ``on_end`` per span id: every started span must end exactly once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: Counter[int] = Counter()
        self.ended: Counter[int] = Counter()
        self.names: dict[int, str] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        sid = span.context.span_id
        with self._lock:
            self.started[sid] += 1
            self.names[sid] = span.name

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended[span.context.span_id] += 1

    def problems(self) -> list[str]:
        """Spans started or ended other than exactly once (empty when balanced)."""
        with self._lock:
            out = []
            for sid in set(self.started) | set(self.ended):
                s, e = self.started[sid], self.ended[sid]
                if s != 1 or e != 1:
                    out.append(f"{self.names.get(sid, hex(sid))}: started {s}x, ended {e}x")
            return sorted(out)


class Telemetry(Signals):
    """Explicit SDK providers (in-memory span exporter + counter, in-memory metric reader)
    installed into graphai with ``instrument(tracer_provider=..., meter_provider=...)``."""

    def __init__(self, settings: env.Settings | None = None) -> None:
        super().__init__(settings)
        self.counter = SpanCounter()
        self.tp.add_span_processor(self.counter)

    def clear(self) -> None:
        self.exporter.clear()

    def close(self) -> None:
        telemetry.instrument()  # back to the global providers
        super().close()


def rss_bytes() -> int:
    """Resident set size of this process, after a full collection."""
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


MB = 1024 * 1024
