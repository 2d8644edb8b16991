"""
The stream machinery behind ``Callback`` and ``EventCallback``: typed markers, per-node views,
``aiter()``, sub-steps and late tokens.

- :class:`NativeStream`: our own callbacks. The runner gets a per-node *view* (same stream,
  its own node name and observer), markers are typed items, and the bound (``max_buffered``)
  applies to markers too.
- :class:`ForeignStream`: a user ``Callback`` subclass that overrides the stream methods, or
  any upstream-style duck-typed callback: driven through its own ``start_node``/``end_node``.

Views are instances of the callback's own class, so this module reads and sets the private
state of instances other than ``self`` (a view's root, a view): that is its job, and the only
module allowed to (ruff SLF001 is on everywhere else in ``graphai/``).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, ClassVar

from graphai import _hooks
from graphai._channel import Channel, ChannelQueue, ChannelStatistics, Timed
from graphai._context import CURRENT_VIEW, ENGINE_NODE
from graphai._log import LOG_LATE_TOKEN, log_event
from graphai._stream.consume import Consumer
from graphai._stream.markers import _END, _END_MARKER, _END_NODE, _ID, _START, _Marker
from graphai.errors import ConsumerGoneError, StreamClosedError

__all__ = ["StreamBase"]



class StreamBase(Consumer):
    """Shared machinery of :class:`Callback` and :class:`EventCallback`."""

    # a view shares its root's channel; root: _root is self
    __slots__ = (
        "__dict__",
        "_active",
        "_chan",
        "_ended",
        "_first_token",
        "_late",
        "_node_name",
        "_open",
        "_rec",
        "_root",
        "_subs",
        "identifier",
    )

    # whether a node start also emits the node-id marker (<id:NAME:>); events have no such item
    _id_marker: ClassVar[bool] = True

    def _init_stream(self, identifier: str, max_buffered: int | None) -> None:
        self.identifier = identifier
        self._chan = Channel(max_buffered)
        self._root = self
        self._rec: _hooks.NodeObserver | None = None
        self._node_name: str | None = None
        self._active = True
        self._first_token = True
        self._open: dict[str, _hooks.NodeObserver] = {}
        self._ended = False  # a view: its node run has ended (later tokens are late)
        self._late = 0  # late tokens dropped through this view
        # a view: the sub-steps a node opened with start_node() on it, innermost last
        self._subs: list[tuple[str, _hooks.NodeObserver | None, bool]] = []

    # -- upstream-compatible attributes ----------------------------------------------------
    @property
    def first_token(self) -> bool:
        return self._root._first_token

    @first_token.setter
    def first_token(self, value: bool) -> None:
        self._root._first_token = value

    @property
    def current_node_name(self) -> str | None:
        return self._node_name

    @current_node_name.setter
    def current_node_name(self, value: str | None) -> None:
        self._node_name = value

    @property
    def active(self) -> bool:
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        self._active = value

    @property
    def queue(self) -> ChannelQueue:
        """The stream as an ``asyncio.Queue`` (as upstream's ``queue``), sharing the buffer of
        :meth:`aiter`: ``get()`` takes the next item, rendered as ``aiter()`` would yield it
        (special tokens as strings, or :class:`GraphEvent` objects), so ``aiter()`` does not
        see it again; ``put_nowait(x)`` sends ``x`` as content. Reading END through the queue
        ends the stream for a later ``aiter()``."""
        return ChannelQueue.of(self._chan, self._root._queue_item)

    def _queue_item(self, item: Any) -> Any:
        """An item taken through ``queue``: what ``aiter()`` would have yielded for it."""
        cls = item.__class__
        if cls is _Marker:
            if item.kind == _END:
                self._chan.finish()
            return self._render(item)
        if cls is Timed:
            on_delay = self._chan.on_delay
            if on_delay is not None:
                try:
                    on_delay(perf_counter() - item.t)
                except Exception:  # telemetry never breaks the stream
                    pass
            item = item.token
        if isinstance(item, str):
            content = self._content_formatter()
            if content is not None:
                return content(item)
        return item

    @property
    def closed(self) -> bool:
        """True once the stream is closed (END sent) or the consumer stopped reading."""
        return self._chan.closed

    def statistics(self) -> ChannelStatistics:
        """Buffer use and waiting ends of the stream."""
        return self._chan.statistics()

    # -- views (engine use) ----------------------------------------------------------------
    # class-specific attributes a view shares with its root (set by subclasses)
    _shared_slots: ClassVar[tuple[str, ...]] = ()

    def _view(self, name: str, rec: _hooks.NodeObserver) -> StreamBase:
        """A per-node view: the root's stream and settings, this node's name and observer."""
        v = object.__new__(type(self))
        root = self._root
        v.__dict__.update(root.__dict__)
        for attr in self._shared_slots:
            setattr(v, attr, getattr(root, attr))
        v.identifier = root.identifier
        v._chan = root._chan
        v._root = root
        v._rec = None if rec is _hooks.NOOP_NODE else rec
        v._node_name = name
        v._active = True
        v._first_token = False
        v._open = root._open
        v._ended = False
        v._late = 0
        v._subs = []
        return v

    def _open_node(self, name: str, rec: _hooks.NodeObserver) -> StreamBase:
        """Emit the start markers of a node run and return its view."""
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot start node on a closed stream")
        self._root._first_token = False
        chan.put(_Marker(_START, name))
        if self._id_marker:
            chan.put(_Marker(_ID, name))
        return self._view(name, rec)

    def _close_node(self, outcome: str = _hooks.OK) -> None:
        """Emit the end marker of this view's node (silently skipped on a closed stream),
        after those of sub-steps still open; later tokens through the view are late."""
        self._ended = True
        chan = self._chan
        while self._subs:
            name, rec, active = self._subs.pop()
            if active and not chan.closed:
                chan.put(_Marker(_END_NODE, name))
            if rec is not None:
                rec.end(_hooks.CANCELLED if chan.gone else outcome)
        if not chan.closed and self._node_name is not None:
            chan.put(_Marker(_END_NODE, self._node_name))

    def _drop_late(self, view: StreamBase) -> None:
        """A token sent through ``view`` after its node ended (from a task the node left
        running, say): dropped, never put inside a later node's markers; counted on the
        node's observer (``graphai.node.late_tokens``) and logged once per node run."""
        view._late += 1
        rec = view._rec
        if rec is not None:
            rec.late_token()
        if view._late == 1:
            log_event("warning", LOG_LATE_TOKEN, node=view._node_name)

    def _closed_error(self, msg: str) -> StreamClosedError:
        if self._chan.gone:
            return ConsumerGoneError(f"{msg}: the consumer stopped reading")
        return StreamClosedError(msg)

    def _current_view(self) -> StreamBase | None:
        """For the root callback: the node view running in this context, if any."""
        v = CURRENT_VIEW.get()
        return v if v is not None and v._chan is self._chan else None

    def _observer(self) -> _hooks.NodeObserver | None:
        """The observer of the node producing now: a view's own; for the root callback, its
        standalone node or the node view running in this context."""
        rec = self._rec
        if rec is None and self._root is self:
            v = self._current_view()
            if v is not None:
                return v._rec
        return rec

    def _late_view(self) -> StreamBase | None:
        """The ended node view a token sent now belongs to, or ``None`` (not late)."""
        if self._root is not self:
            return self if self._ended else None
        v = self._current_view()
        return v if v is not None and v._ended else None

    def _emit(self, chan: Channel, item: Any, token: Any) -> None:
        """Record ``token`` on its node's observer and put ``item``; the observer may ask for
        a delivery-delay sample (it returns the put time). Late tokens are dropped."""
        late = self._late_view()
        if late is not None:
            self._drop_late(late)
            return
        rec = self._rec if self._root is not self else self._observer()
        if rec is None:
            chan.put(item)
        else:
            t = rec.token(token)
            chan.put(item if t is None else Timed(item, t))

    def _check_node_name(self, node_name: str | None = None) -> None:
        if node_name:
            current = self._node_name
            if current is None and self._root is self:
                v = CURRENT_VIEW.get()
                if v is not None and v._chan is self._chan:
                    current = v._node_name
            if current != node_name:
                raise ValueError(f"Node name mismatch: {current} != {node_name}")

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
            rec = _hooks.get_instrumentation().standalone_node(node_name)
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

    def __del__(self) -> None:
        # a callback dropped with standalone nodes still open: end their spans (cancelled) so
        # they leave the active-node gauge and active_streams()
        try:
            if self._root is self and self._open:
                for rec in list(self._open.values()):
                    rec.end(_hooks.CANCELLED)
                self._open.clear()
        except Exception:
            pass
