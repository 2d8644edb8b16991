"""``start_node()`` / ``end_node()`` / ``close()``: node markers sent by user code (standalone
use, a ``Callback`` subclass driven by the engine, and sub-steps on a node's own view)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from graphai import _hooks
from graphai._context import ENGINE_NODE
from graphai._stream.markers import _END_MARKER, _END_NODE, _ID, _START, _Marker
from graphai.errors import ConsumerGoneError, StreamClosedError

if TYPE_CHECKING:
    from graphai._channel import Channel
    from graphai._stream.base import StreamBase

__all__ = ["NodeMarkers"]


class NodeMarkers:
    """Node markers from user code (mixed into ``StreamBase``, whose slots hold the state;
    no ``__slots__`` here: ``StreamBase`` keeps a ``__dict__`` for subclasses anyway)."""

    _chan: Channel
    _root: StreamBase
    _rec: _hooks.NodeObserver | None
    _node_name: str | None
    _active: bool
    _ended: bool
    _open: dict[str, _hooks.NodeObserver]
    _subs: list[tuple[str, _hooks.NodeObserver | None, bool]]
    _id_marker: ClassVar[bool]

    def _closed_error(self, msg: str) -> StreamClosedError:
        if self._chan.gone:
            return ConsumerGoneError(f"{msg}: the consumer stopped reading")
        return StreamClosedError(msg)

    # -- node management (standalone use) -------------------------------------------------
    async def start_node(self, node_name: str, active: bool = True) -> None:
        """
        Mark the start of a node: emits its start markers. Outside a graph run it also opens
        the node's span (under the current span); inside one (a callback subclass driven by
        the engine) tokens go to the engine's node span.
        """
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot start node on a closed stream")
        if self._root is not self:
            self._start_sub(node_name, active)
            return
        self._node_name = node_name
        self._root._first_token = False
        self._active = active
        engine_rec = ENGINE_NODE.get()
        if engine_rec is not None:
            self._rec = None if engine_rec is _hooks.NOOP_NODE else engine_rec
        else:
            self._end_open(node_name, _hooks.OK)
            rec = _hooks.get_instrumentation().standalone_node(node_name, self)
            if rec is not _hooks.NOOP_NODE:
                self._open[node_name] = rec
            self._rec = None if rec is _hooks.NOOP_NODE else rec
        if active:
            chan.put(_Marker(_START, node_name))
            if self._id_marker:
                chan.put(_Marker(_ID, node_name))

    def _end_open(self, name: str | None, outcome: str) -> None:
        """End the standalone span opened by ``start_node(name)``, if any."""
        rec = self._open.pop(name, None) if name is not None else None
        if rec is not None:
            rec.end(outcome)
        if rec is not None and self._rec is rec:
            self._rec = None

    def _start_sub(self, name: str, active: bool) -> None:
        """``start_node()`` on a node's view: a sub-step nested in that node (its markers
        inside the node's, its span a child of the node's span)."""
        if self._ended:
            raise StreamClosedError(
                f"start_node({name!r}): node {self._node_name!r} has already ended"
            )
        rec: _hooks.NodeObserver | None = _hooks.get_instrumentation().standalone_node(name)
        if rec is _hooks.NOOP_NODE:
            rec = None
        self._subs.append((name, rec, active))
        if active:
            self._chan.put(_Marker(_START, name))
            if self._id_marker:
                self._chan.put(_Marker(_ID, name))

    def _end_sub(self, name: str | None) -> None:
        subs = self._subs
        if not subs or (name and subs[-1][0] != name):
            open_ = repr(subs[-1][0]) if subs else "none"
            raise ValueError(
                f"end_node({name!r}) on the view of node {self._node_name!r}: it ends the "
                f"innermost open sub-step (open: {open_}); the engine ends the node itself"
            )
        sub, rec, active = subs.pop()
        if active:
            self._chan.put(_Marker(_END_NODE, sub))
        if rec is not None:
            rec.end(_hooks.OK)

    async def end_node(self, node_name: str) -> None:
        """Mark the end of a node: emits its end marker and ends its span (also when the
        stream is already closed, which then raises). On a node's view it ends the innermost
        sub-step opened with :meth:`start_node`."""
        chan = self._chan
        if self._root is not self:
            if chan.closed:
                raise self._closed_error("Cannot end node on a closed stream")
            self._end_sub(node_name)
            return
        name = node_name or self._node_name
        if ENGINE_NODE.get() is not None:
            self._rec = None
        if chan.closed:
            self._end_open(name, _hooks.CANCELLED if chan.gone else _hooks.OK)
            raise self._closed_error("Cannot end node on a closed stream")
        if self._active and name is not None:
            chan.put(_Marker(_END_NODE, name))
        self._end_open(name, _hooks.OK)

    async def close(self) -> None:
        """Close the stream: emits END once; later calls do nothing. Ends the spans of
        standalone nodes still open."""
        chan = self._chan
        if self._open:
            outcome = _hooks.CANCELLED if chan.gone else _hooks.OK
            for rec in list(self._open.values()):
                rec.end(outcome)
            self._open.clear()
            self._rec = None
        if chan.closed:
            return
        chan.closed = True
        chan.put(_END_MARKER)
