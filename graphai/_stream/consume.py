"""``aiter()``: the consumer's side of the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from time import perf_counter
from typing import Any

from graphai._channel import Channel, Timed
from graphai._stream.markers import _END, _Marker, _yield_once

__all__ = ["Consumer"]


class Consumer:
    """The consumer side of a stream (mixed into ``StreamBase``)."""

    __slots__ = ()
    _chan: Channel

    def _render(self, m: _Marker) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _content_formatter(self) -> Callable[[str], str] | None:
        """How string content tokens are rendered; ``None`` for as-is."""
        return None

    async def aiter(self) -> AsyncIterator[Any]:
        """
        Yield the stream until END (inclusive). A second ``aiter()`` after the stream ended
        yields nothing. Cancelling the consumer propagates ``CancelledError``; a consumer that
        stops early (break, cancel, ``aclose``) marks the stream gone, so the producer's next
        token raises :class:`~graphai.errors.ConsumerGoneError`.
        """
        chan = self._chan
        if chan.consumed:
            return
        buf = chan.buf
        bounded = chan.maxsize is not None
        render = self._render
        content = self._content_formatter()
        finished = False
        try:
            while True:
                if not buf:
                    # yield to the loop once before parking on a future: a producer that
                    # interleaves with us refills the buffer without a future round trip
                    await _yield_once()
                    if not buf:
                        await chan.wait_item()
                    continue
                item = buf.popleft()
                if bounded:
                    chan.taken()
                cls = item.__class__
                if cls is str:
                    yield item if content is None else content(item)
                elif cls is _Marker:
                    if item.kind == _END:
                        finished = True
                        yield render(item)
                        return
                    yield render(item)
                elif cls is Timed:
                    on_delay = chan.on_delay
                    if on_delay is not None:
                        try:
                            on_delay(perf_counter() - item.t)
                        except Exception:  # telemetry never breaks the stream
                            pass
                    tok = item.token
                    yield tok if content is None or not isinstance(tok, str) else content(tok)
                elif content is not None and isinstance(item, str):  # a str subclass
                    yield content(item)
                else:
                    yield item
        finally:
            if finished:
                chan.finish()
            else:
                chan.mark_gone()
