"""
The ``NodeStream`` seam: how the runner opens and closes a node's part of the stream without
knowing which kind of callback it has.

- :class:`NativeStream`: our own callbacks. The node gets a per-node *view* (same stream, its
  own node name and observer), markers are typed items, and the bound (``max_buffered``)
  applies to markers too.
- :class:`ForeignStream`: a user ``Callback`` subclass that overrides the stream methods, or
  any upstream-style duck-typed callback: driven through its own ``start_node``/``end_node``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import deque
from typing import Any

from graphai import _hooks
from graphai._channel import Channel
from graphai._context import CURRENT_VIEW, ENGINE_NODE
from graphai._log import LOG_CLOSE_FAILED, log_event
from graphai._stream.base import StreamBase

__all__ = [
    "ForeignStream",
    "NativeStream",
    "Opened",
    "close_callback",
    "discard_unread",
    "node_stream",
]


# -- the seam -----------------------------------------------------------------------------------
# stream methods whose override takes a callback class off the native path
_NATIVE_METHODS = ("start_node", "end_node", "acall", "__call__", "close", "aiter")
_native_cache: dict[type, bool] = {}


def _is_native(cb: Any) -> bool:
    """A ``Callback``/``EventCallback`` (or a subclass not overriding the stream methods)."""
    cls = type(cb)
    ok = _native_cache.get(cls)
    if ok is None:
        ok = False
        if isinstance(cb, StreamBase):
            root = next(c for c in cls.__mro__ if c.__dict__.get("_native_root"))
            ok = all(getattr(cls, m) is getattr(root, m) for m in _NATIVE_METHODS)
        _native_cache[cls] = ok
    return ok


class Opened:
    """A node's open part of the stream: what the node receives, and how to close it."""

    __slots__ = ("callback", "name", "token")

    def __init__(self, callback: Any, name: str, token: Any) -> None:
        self.callback = callback
        self.name = name
        self.token = token


class NativeStream:
    """The seam for our own callbacks: per-node views and typed markers."""

    __slots__ = ("cb", "chan")

    def __init__(self, cb: StreamBase) -> None:
        self.cb = cb
        self.chan: Channel = cb._chan

    def observe(self, obs: _hooks.RunObserver) -> None:
        obs.channel(self.chan)

    async def open(self, name: str, obs: _hooks.NodeObserver) -> Opened:
        """Emit the node's start markers (waiting for space under a bound); its view."""
        chan = self.chan
        if chan.maxsize is not None:  # markers respect the bound too
            await chan.wait_space(2 if self.cb._id_marker else 1)
        view = self.cb._open_node(name, obs)
        return Opened(view, name, CURRENT_VIEW.set(view))

    async def close(self, opened: Opened) -> None:
        """The node returned: its end marker, also when cancelled while waiting for space."""
        try:
            if self.chan.maxsize is not None:
                await self.chan.wait_space()
        finally:
            opened.callback._close_node()
            CURRENT_VIEW.reset(opened.token)

    async def abort(self, opened: Opened, outcome: str) -> None:
        """The node failed or was cancelled: its end marker (never waits, never raises)."""
        try:
            opened.callback._close_node(outcome)
        finally:
            CURRENT_VIEW.reset(opened.token)

    async def before_end(self) -> None:
        """END respects the bound too."""
        if self.chan.maxsize is not None:
            await self.chan.wait_space()


class ForeignStream:
    """The seam for callbacks driven through their own ``start_node``/``end_node``."""

    __slots__ = ("cb",)

    def __init__(self, cb: Any) -> None:
        self.cb = cb

    def observe(self, obs: _hooks.RunObserver) -> None:
        pass

    async def open(self, name: str, obs: _hooks.NodeObserver) -> Opened:
        token = ENGINE_NODE.set(obs)  # its tokens reach the engine's node span
        try:
            await self.cb.start_node(node_name=name)
        except BaseException:
            ENGINE_NODE.reset(token)
            raise
        return Opened(self.cb, name, token)

    async def close(self, opened: Opened) -> None:
        try:
            await self.cb.end_node(node_name=opened.name)
        finally:
            ENGINE_NODE.reset(opened.token)

    async def abort(self, opened: Opened, outcome: str) -> None:
        try:  # a user end_node(): an await that may fail or be cancelled itself
            with contextlib.suppress(Exception):
                await self.cb.end_node(node_name=opened.name)
        finally:
            ENGINE_NODE.reset(opened.token)

    async def before_end(self) -> None:
        pass


def node_stream(callback: Any) -> NativeStream | ForeignStream:
    """The seam for ``callback``: native for our callbacks, foreign for everything else."""
    return NativeStream(callback) if _is_native(callback) else ForeignStream(callback)


def discard_unread(callback: Any) -> None:
    """A callback nobody can read (``execute()`` made it): keep no tokens buffered."""
    if isinstance(callback, StreamBase):
        callback._chan.buf = deque(maxlen=0)


async def close_callback(callback: Any) -> None:
    """Close ``callback`` (END); a user callback's failing ``close()`` is logged, never
    raised over the run's result or error."""
    try:
        if isinstance(callback, StreamBase):
            await callback.close()
        else:
            close = getattr(callback, "close", None)
            if close is not None:
                res = close()
                if inspect.isawaitable(res):
                    await res
    except Exception as exc:  # a user callback's close() failing must not mask the result
        log_event("warning", LOG_CLOSE_FAILED, error_type=type(exc).__name__)
