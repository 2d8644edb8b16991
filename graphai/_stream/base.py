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
from graphai._context import CURRENT_VIEW
from graphai._log import LOG_LATE_TOKEN, log_event
from graphai._stream.consume import Consumer
from graphai._stream.markers import _END, _END_NODE, _ID, _START, _Marker
from graphai._stream.nodes import NodeMarkers

__all__ = ["ENDED", "LateToken", "StreamBase"]


class LateToken(Exception):
    """Raised by :data:`ENDED`: the token was sent through a view whose node has ended."""


class _Ended(_hooks.NodeObserver):
    """The observer of an ended node view. ``acall`` calls the view's observer anyway, so
    this one raising :class:`LateToken` finds a late token without a check per token (the
    view's own observer moves to ``_late_rec``, which counts it)."""

    __slots__ = ()

    def token(self, token: Any) -> float | None:
        raise LateToken


ENDED = _Ended()



class StreamBase(NodeMarkers, Consumer):
    """Shared machinery of :class:`Callback` and :class:`EventCallback`."""

    # a view shares its root's channel; root: _root is self
    __slots__ = (
        "_active",
        "_chan",
        "_ended",
        "_first_token",
        "_late",
        "_late_rec",
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
        self._late_rec: _hooks.NodeObserver | None = None  # an ended view's own observer
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
        v._late_rec = None
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
        if self._root is not self:
            self._late_rec, self._rec = self._rec, ENDED
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
        rec = view._late_rec
        if rec is not None:
            rec.late_token()
        if view._late == 1:
            log_event("warning", LOG_LATE_TOKEN, node=view._node_name)

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
