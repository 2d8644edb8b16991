"""
The token channel between one producer side (nodes, the engine) and one consumer (``aiter()``).

A deque plus at most one consumer waiter future: ``put`` is a plain append (no await point,
no allocation beyond the deque slot) and wakes the consumer only when it is actually waiting.
Cancellation-safe: a waiter removes itself in ``finally`` and items live in the deque, so a
cancelled ``get`` loses nothing.

:class:`ChannelQueue` is the ``asyncio.Queue`` face of a channel (``callback.queue``): its storage
is the channel's deque, so reading through it consumes items (``aiter()`` does not see them
again) and what it puts reaches ``aiter()``. The queue adds nothing to ``put`` or to
``aiter()``'s loop: it only costs its own callers.

An optional bound (``maxsize``) gives backpressure: ``wait_space()`` suspends an async producer
until the consumer has taken enough items. Sync producers (``callback(token)``) cannot wait and
may exceed the bound. Each waiting producer owns its own future (as anyio's memory streams do):
cancelling one producer cancels only that producer's future, never the others' wait.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Channel", "ChannelQueue", "ChannelStatistics", "Timed"]


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
        "buf",
        "closed",
        "consumed",
        "gone",
        "maxsize",
        "on_delay",
        "q",
        "q_tasks",
        "waiter",
    )

    def __init__(self, maxsize: int | None = None) -> None:
        if maxsize is not None and (not isinstance(maxsize, int) or maxsize < 1):
            raise ValueError(f"max_buffered must be a positive int or None, got {maxsize!r}")
        self.buf: deque[Any] = deque()
        self.maxsize = maxsize
        self.waiter: asyncio.Future[None] | None = None
        self._spaces: deque[asyncio.Future[None]] = deque()  # one future per waiting producer
        self.closed = False  # no more items may be put (END was put, or the consumer is gone)
        self.gone = False  # the consumer stopped reading
        self.consumed = False  # a consumer has finished (a second aiter() yields nothing)
        # delivery-delay telemetry: the consumer calls on_delay(seconds) for each Timed item
        self.on_delay: Callable[[float], None] | None = None
        # the asyncio.Queue face (``callback.queue``), held weakly: it holds the callback
        self.q: weakref.ReferenceType[ChannelQueue] | None = None
        self.q_tasks = 0  # items got through the queue minus task_done() calls

    # -- producer side -------------------------------------------------------------------
    def put(self, item: Any) -> None:
        """Append an item (token or marker) and wake the consumer if it waits. Never blocks.
        ``Callback.acall`` inlines these three lines on the token hot path."""
        self.buf.append(item)
        w = self.waiter
        if w is not None:
            self.wake(w)

    def wake(self, w: asyncio.Future[None]) -> None:
        """Wake the waiting consumer (``w`` is ``self.waiter``)."""
        self.waiter = None
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
        """Suspend until the buffer holds an item (or a spurious wake-up: callers re-check).

        Normally one consumer waits. When another one already waits (``aiter()`` and a
        ``queue.get()``, or two ``queue.get()``), the new waiter relays its wake-up to the
        previous one, so every waiter wakes and re-checks the buffer."""
        fut = asyncio.get_running_loop().create_future()
        prev = self.waiter
        if prev is not None and not prev.done():
            fut.add_done_callback(functools.partial(_relay, prev))
        self.waiter = fut
        if self.q is not None and not self.buf:
            self.drained()  # the consumer parks on an empty buffer: a join() may be done
        try:
            await fut
        finally:
            if self.waiter is fut:
                self.waiter = None

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
        self.drained()

    def finish(self) -> None:
        """A consumer has taken END: a later ``aiter()`` yields nothing."""
        self.consumed = True
        self.drained()

    def drained(self) -> None:
        """Tell a waiting ``queue.join()`` that the buffer may have run empty."""
        ref = self.q
        q = ref() if ref is not None else None
        if q is not None:
            q.drained_hook()

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(
            buffered=len(self.buf),
            max_buffered=self.maxsize,
            closed=self.closed,
            consumer_gone=self.gone,
            consumer_waiting=self.waiter is not None,
            producer_waiting=bool(self._spaces),
        )

    # queue-like introspection (``callback.queue`` is a ChannelQueue over this channel)
    def qsize(self) -> int:
        return len(self.buf)

    def empty(self) -> bool:
        return not self.buf


def _relay(prev: asyncio.Future[None], _fut: asyncio.Future[None]) -> None:
    if not prev.done():
        prev.set_result(None)


class ChannelQueue(asyncio.Queue[Any]):
    """
    ``callback.queue``: an ``asyncio.Queue`` whose storage is the channel's deque.

    ``get()``/``get_nowait()`` take the next item of the stream, rendered as ``aiter()`` would
    yield it (``deliver``), and count it as a consumer's read (items taken by ``aiter()`` count
    as done for ``join()``). ``put()``/``put_nowait()`` append a content item for the consumer;
    with a bound (``max_buffered``) ``put_nowait`` raises ``QueueFull`` and ``put`` waits, as
    ``asyncio.Queue`` does (the callback's own sync ``callback(token)`` still ignores it).
    """

    _finished: asyncio.Event  # asyncio.Queue's (set when no task is unfinished)

    def __init__(self, chan: Channel, deliver: Callable[[Any], Any]) -> None:
        self._chan = chan
        self._deliver = deliver
        super().__init__(chan.maxsize or 0)

    @classmethod
    def of(cls, chan: Channel, deliver: Callable[[Any], Any]) -> ChannelQueue:
        """The channel's queue: the same object while anybody holds it. The channel holds it
        weakly (the queue holds the callback, which holds the channel: no cycle); the task
        count lives on the channel, so a new queue object continues it."""
        ref = chan.q
        q = ref() if ref is not None else None
        if q is None:
            q = cls(chan, deliver)
            chan.q = weakref.ref(q)
        return q

    # storage: the channel's deque (read through ``_chan``: the deque may be replaced)
    def _init(self, maxsize: int) -> None:
        pass

    @property
    def _queue(self) -> deque[Any]:
        return self._chan.buf

    def _get(self) -> Any:
        return self._chan.buf.popleft()

    def _put(self, item: Any) -> None:
        self._chan.put(item)

    @property
    def _unfinished_tasks(self) -> int:
        return max(0, self._chan.q_tasks + len(self._chan.buf))

    @_unfinished_tasks.setter
    def _unfinished_tasks(self, value: int) -> None:  # asyncio.Queue.__init__ sets 0
        pass

    def _format(self) -> str:
        result = f"maxsize={self.maxsize!r} qsize={len(self._chan.buf)}"
        unfinished = self._unfinished_tasks
        if unfinished:
            result += f" tasks={unfinished}"
        return result

    def drained_hook(self) -> None:
        if self._unfinished_tasks == 0:
            self._finished.set()

    # -- the asyncio.Queue API ------------------------------------------------------------
    def qsize(self) -> int:
        return len(self._chan.buf)

    def empty(self) -> bool:
        return not self._chan.buf

    def full(self) -> bool:
        maxsize = self._chan.maxsize
        return maxsize is not None and len(self._chan.buf) >= maxsize

    def put_nowait(self, item: Any) -> None:
        if self.full():
            raise asyncio.QueueFull
        self._chan.put(item)
        self._finished.clear()

    async def put(self, item: Any) -> None:
        chan = self._chan
        if chan.maxsize is not None and len(chan.buf) >= chan.maxsize:
            await chan.wait_space()  # returns at once when the consumer is gone
        chan.put(item)
        self._finished.clear()

    def get_nowait(self) -> Any:
        chan = self._chan
        buf = chan.buf
        if not buf:
            raise asyncio.QueueEmpty
        item = buf.popleft()
        chan.q_tasks += 1
        if chan.maxsize is not None:
            chan.taken()
        return self._deliver(item)

    async def get(self) -> Any:
        chan = self._chan
        while not chan.buf:
            await chan.wait_item()
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished_tasks <= 0:
            raise ValueError("task_done() called too many times")
        self._chan.q_tasks -= 1
        if self._unfinished_tasks == 0:
            self._finished.set()

    async def join(self) -> None:
        if self._unfinished_tasks > 0:
            self._finished.clear()
            await self._finished.wait()
