"""
The token channel between one producer side (nodes, the engine) and one consumer (``aiter()``).

A deque plus at most one consumer waiter future: ``put`` is a plain append (no await point,
no allocation beyond the deque slot) and wakes the consumer only when it is actually waiting.
Cancellation-safe: a waiter removes itself in ``finally`` and items live in the deque, so a
cancelled ``get`` loses nothing.

An optional bound (``maxsize``) gives backpressure: ``wait_space()`` suspends an async producer
until the consumer has taken enough items. Sync producers (``callback(token)``) cannot wait and
may exceed the bound. Each waiting producer owns its own future (as anyio's memory streams do):
cancelling one producer cancels only that producer's future, never the others' wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Channel", "ChannelStatistics", "Timed"]


class ChannelStatistics(NamedTuple):
    """A snapshot of a channel, as ``Callback.statistics()`` returns it."""

    buffered: int
    max_buffered: int | None
    closed: bool
    consumer_gone: bool
    consumer_waiting: bool
    producer_waiting: bool


class Timed:
    """A sampled content token carrying the time it was put (delivery-delay telemetry)."""

    __slots__ = ("t", "token")

    def __init__(self, token: Any, t: float) -> None:
        self.token = token
        self.t = t


class Channel:
    __slots__ = (
        "_spaces",
        "_waiter",
        "buf",
        "closed",
        "consumed",
        "gone",
        "maxsize",
        "on_delay",
    )

    def __init__(self, maxsize: int | None = None) -> None:
        if maxsize is not None and (not isinstance(maxsize, int) or maxsize < 1):
            raise ValueError(f"max_buffered must be a positive int or None, got {maxsize!r}")
        self.buf: deque[Any] = deque()
        self.maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._spaces: deque[asyncio.Future[None]] = deque()  # one future per waiting producer
        self.closed = False  # no more items may be put (END was put, or the consumer is gone)
        self.gone = False  # the consumer stopped reading
        self.consumed = False  # a consumer has finished (a second aiter() yields nothing)
        # delivery-delay telemetry: the consumer calls on_delay(seconds) for each Timed item
        self.on_delay: Callable[[float], None] | None = None

    # -- producer side -------------------------------------------------------------------
    def put(self, item: Any) -> None:
        """Append an item (token or marker) and wake the consumer if it waits. Never blocks.
        ``Callback.acall`` inlines these three lines on the token hot path."""
        self.buf.append(item)
        w = self._waiter
        if w is not None:
            self.wake(w)

    def wake(self, w: asyncio.Future[None]) -> None:
        """Wake the waiting consumer (``w`` is ``self._waiter``)."""
        self._waiter = None
        if not w.done():
            w.set_result(None)

    async def wait_space(self, need: int = 1) -> None:
        """Suspend until ``need`` more items fit under the bound (or the consumer is gone).

        Each call waits on a future of its own, so a cancelled producer leaves the others
        waiting (a shared future would be cancelled for all of them)."""
        maxsize = self.maxsize
        if maxsize is None:
            return
        limit = maxsize - min(need, maxsize)
        while len(self.buf) > limit and not self.gone:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            spaces = self._spaces
            spaces.append(fut)
            try:
                await fut
            finally:
                if not fut.done() or fut.cancelled():
                    try:
                        spaces.remove(fut)
                    except ValueError:
                        pass

    # -- consumer side -------------------------------------------------------------------
    async def wait_item(self) -> None:
        """Suspend until the buffer holds an item."""
        fut = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await fut
        finally:
            if self._waiter is fut:
                self._waiter = None

    def taken(self) -> None:
        """Called by the consumer after taking items when a bound is set: wake the producers
        (each re-checks the space it needs)."""
        spaces = self._spaces
        if spaces and self.maxsize is not None and len(self.buf) < self.maxsize:
            self._release()

    def _release(self) -> None:
        spaces = self._spaces
        while spaces:
            fut = spaces.popleft()
            if not fut.done():
                fut.set_result(None)

    def mark_gone(self) -> None:
        """The consumer stopped reading: close for producers and release every waiting
        producer."""
        self.gone = True
        self.closed = True
        self.consumed = True
        self._release()

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            buffered=len(self.buf),
            max_buffered=self.maxsize,
            closed=self.closed,
            consumer_gone=self.gone,
            consumer_waiting=self._waiter is not None,
            producer_waiting=bool(self._spaces),
        )

    # asyncio.Queue-like introspection (``callback.queue`` was an asyncio.Queue upstream)
    def qsize(self) -> int:
        return len(self.buf)

    def empty(self) -> bool:
        return not self.buf
