"""
Callbacks: the stream between a graph's nodes and its consumer.

Internally a callback carries typed items (node start, node id, node end, stream end markers
and content tokens) through a :class:`~graphai._channel.Channel`. Strings such as
``<graphai:NAME:start:>`` are rendered only at the consumer edge, in :meth:`Callback.aiter`, so
a content token that happens to equal a special-token string is never mistaken for one.

Each node run gets its own *view* of the callback (the object a node receives as its
``callback`` parameter): same stream, its own node name, so tokens and end markers carry the
right node under ``asyncio.gather``, branches and concurrent runs.
"""

from __future__ import annotations

import contextvars
import functools
import json
import string
import types
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from enum import Enum
from time import perf_counter
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from graphai import _hooks
from graphai._channel import Channel, ChannelQueue, ChannelStatistics, Timed
from graphai._log import log_event
from graphai.errors import ConsumerGoneError, StreamClosedError

__all__ = [
    "Callback",
    "CallbackProtocol",
    "ChannelStatistics",
    "EventCallback",
    "GraphEvent",
    "GraphEventType",
    "StrEnum",
    "StreamItem",
    "parse_stream_token",
]

log_stream = True  # upstream module flag (unused there too)

_LOG_LATE_TOKEN = "callback.late_token"

DEFAULT_SPECIAL_TOKEN_FORMAT = "<{identifier}:{token}:{params}>"
DEFAULT_TOKEN_FORMAT = "{token}"

# marker kinds
_START = 0  # <id:NAME:start:>
_ID = 1  # <id:NAME:>
_END_NODE = 2  # <id:NAME:end:>
_END = 3  # <id:END:>


class _Marker:
    __slots__ = ("kind", "name")

    def __init__(self, kind: int, name: str) -> None:
        self.kind = kind
        self.name = name


_END_MARKER = _Marker(_END, "END")

# The node view currently running in this context (set by the engine around a node run), so
# tokens sent through the *root* callback object are still attributed to the right node.
_CURRENT_VIEW: contextvars.ContextVar[_StreamBase | None] = contextvars.ContextVar(
    "graphai_current_view", default=None
)


@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """One bare trip through the event loop (what ``asyncio.sleep(0)`` does)."""
    yield


# The observer of the engine node run whose markers a (non-native) callback is emitting: lets a
# Callback subclass driven by the engine report tokens to the engine's node span.
_ENGINE_NODE: contextvars.ContextVar[_hooks.NodeObserver | None] = contextvars.ContextVar(
    "graphai_engine_node", default=None
)


class StrEnum(Enum):
    """Enum whose ``str()`` is its value (as upstream's ``graphai.callback.StrEnum``)."""

    def __str__(self) -> str:
        return str(self.value)


class GraphEventType(StrEnum):
    START = "start"
    END = "end"
    START_NODE = "start_node"
    END_NODE = "end_node"
    CALLBACK = "callback"


@dataclass
class GraphEvent:
    """
    A graph event: node start/end, stream end, or a user event sent through an
    :class:`EventCallback`.

    Args:
        type: ``start_node``, ``end_node``, ``callback``, ``end`` or a custom string.
        identifier: the callback's identifier (a session id, say).
        token: the token (LLM output chunk) or, for node events, the node name.
        params: extra parameters (tool-call arguments, metadata).
    """

    type: GraphEventType | str
    identifier: str
    token: str | None = None
    params: dict[str, Any] | None = None

    def encode(self, charset: str = "utf-8") -> bytes:
        """Server-sent-events framing: ``data: {compact JSON}\\n\\n`` (non-ASCII kept)."""
        event_dict = {
            "type": self.type.value if isinstance(self.type, Enum) else str(self.type),
            "identifier": self.identifier,
            "token": self.token,
            "params": self.params,
        }
        data = f"data: {json.dumps(event_dict, ensure_ascii=False, separators=(',', ':'))}\n\n"
        return data.encode(charset)


@runtime_checkable
class CallbackProtocol(Protocol):
    """What ``Graph.execute`` needs of a callback (duck typing works too)."""

    queue: Any

    async def start_node(self, node_name: str, active: bool = True) -> None: ...
    async def end_node(self, node_name: str) -> None: ...
    async def close(self) -> None: ...


def _check_format(value: Any, arg: str, sample: dict[str, str]) -> str | None:
    """
    Validate a format string against the placeholders in ``sample`` and render it once with
    the sample values, so a bad format fails here and never in the middle of a stream.
    Returns None when the format is the identity ``{token}``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{arg} must be a str, got {type(value).__name__}")
    try:
        parsed = [(f, conv) for _, f, _, conv in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{arg} {value!r} is not a valid format string: {exc}") from None
    allowed_s = ", ".join("{" + a + "}" for a in sample)
    for f, conv in parsed:
        if f not in sample:
            shown = "{" + f + "}" if f else "{}"
            if f.split(".", 1)[0].split("[", 1)[0] in sample:
                raise ValueError(
                    f"{arg} {value!r} uses {shown}: attribute and index lookups are not "
                    f"supported; allowed: {allowed_s}"
                )
            raise ValueError(f"{arg} {value!r} uses unknown placeholder {shown}; allowed: {allowed_s}")
        if conv not in (None, "r", "s", "a"):
            raise ValueError(f"{arg} {value!r} uses unknown conversion !{conv}")
    try:
        value.format(**sample)
    except Exception as exc:
        raise ValueError(f"{arg} {value!r} cannot be rendered: {exc}") from None
    return None if value == "{token}" else value


class _StreamBase:
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
    def _view(self, name: str, rec: _hooks.NodeObserver) -> _StreamBase:
        v = object.__new__(type(self))
        root = self._root
        v.__dict__.update(root.__dict__)
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

    def _open_node(self, name: str, rec: _hooks.NodeObserver) -> _StreamBase:
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

    def _drop_late(self, view: _StreamBase) -> None:
        """A token sent through ``view`` after its node ended (from a task the node left
        running, say): dropped, never put inside a later node's markers; counted on the
        node's observer (``graphai.node.late_tokens``) and logged once per node run."""
        view._late += 1
        rec = view._rec
        if rec is not None:
            rec.late_token()
        if view._late == 1:
            log_event("warning", _LOG_LATE_TOKEN, node=view._node_name)

    def _closed_error(self, msg: str) -> StreamClosedError:
        if self._chan.gone:
            return ConsumerGoneError(f"{msg}: the consumer stopped reading")
        return StreamClosedError(msg)

    def _current_view(self) -> _StreamBase | None:
        """For the root callback: the node view running in this context, if any."""
        v = _CURRENT_VIEW.get()
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

    def _late_view(self) -> _StreamBase | None:
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
                v = _CURRENT_VIEW.get()
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
        engine_rec = _ENGINE_NODE.get()
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
        if _ENGINE_NODE.get() is not None:
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

    # -- consumer ---------------------------------------------------------------------------
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


class Callback(_StreamBase):
    """
    The string-token callback (upstream's default). Streams content tokens and special tokens
    ``<graphai:NAME:start:>``, ``<graphai:NAME:>``, ``<graphai:NAME:end:>`` and
    ``<graphai:END:>``.

    Args:
        identifier: the ``{identifier}`` of special tokens.
        special_token_format: format of special tokens; placeholders ``{identifier}``,
            ``{token}``, ``{params}``. Unknown placeholders raise ``ValueError`` here.
        token_format: format applied to string content tokens (placeholder ``{token}``).
        max_buffered: optional bound on buffered items; ``await callback.acall()`` waits while
            the buffer is full (backpressure). ``None`` (default): unbounded.

    .. versionchanged:: 0.1.0
       ``token_format`` is applied; no ``DeprecationWarning``; ``max_buffered`` added.
    """

    __slots__ = ("_special_fmt", "_tok_fmt", "_tokens_cache", "special_token_format", "token_format")

    def __init__(
        self,
        identifier: str = "graphai",
        special_token_format: str = DEFAULT_SPECIAL_TOKEN_FORMAT,
        token_format: str = DEFAULT_TOKEN_FORMAT,
        *,
        max_buffered: int | None = None,
    ) -> None:
        if identifier is not None and not isinstance(identifier, str):
            raise TypeError(f"identifier must be a str, got {type(identifier).__name__}")
        _check_format(
            special_token_format,
            "special_token_format",
            {"identifier": identifier or "", "token": "node:start", "params": ""},
        )
        if "{token" not in special_token_format.replace("{{", ""):
            raise ValueError(
                f"special_token_format {special_token_format!r} has no {{token}} placeholder: "
                "every special token (node start, node end, END) would render the same"
            )
        self._tok_fmt = _check_format(token_format, "token_format", {"token": "token"})
        self.special_token_format = special_token_format
        self.token_format = token_format
        self._tokens_cache: dict[tuple[int, str], str] = {}
        self._init_stream(identifier, max_buffered)

    def _view(self, name: str, rec: _hooks.NodeObserver) -> _StreamBase:
        v = super()._view(name, rec)
        assert isinstance(v, Callback)
        root = self._root
        assert isinstance(root, Callback)
        v.special_token_format = root.special_token_format
        v.token_format = root.token_format
        v._tok_fmt = root._tok_fmt
        v._tokens_cache = root._tokens_cache
        return v

    def __call__(self, token: Any, node_name: str | None = None) -> None:
        """Send a token (sync). Ignores ``max_buffered`` (a sync call cannot wait)."""
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot add tokens to a closed stream")
        if node_name:
            self._check_node_name(node_name)
        if self._root is not self:
            if self._ended:
                return self._drop_late(self)
            rec = self._rec
        else:
            late = self._late_view()
            if late is not None:
                return self._drop_late(late)
            rec = self._observer()
        if rec is not None:
            t = rec.token(token)
            if t is not None:
                token = Timed(token, t)
        chan.buf.append(token)
        w = chan._waiter
        if w is not None:
            chan.wake(w)

    async def acall(self, token: Any, node_name: str | None = None) -> None:
        """Send a token. With ``max_buffered`` set, waits while the buffer is full."""
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot add tokens to a closed stream")
        if node_name:
            self._check_node_name(node_name)
        if chan.maxsize is not None and len(chan.buf) >= chan.maxsize:
            await chan.wait_space()
            if chan.closed:
                raise self._closed_error("Cannot add tokens to a closed stream")
        if self._root is not self:
            if self._ended:
                return self._drop_late(self)
            rec = self._rec
        else:
            late = self._late_view()
            if late is not None:
                return self._drop_late(late)
            rec = self._observer()
        if rec is not None:
            t = rec.token(token)
            if t is not None:
                token = Timed(token, t)
        chan.buf.append(token)
        w = chan._waiter
        if w is not None:
            chan.wake(w)

    def build_special_token(self, name: str, params: dict[str, Any] | None = None) -> str:
        """Render a special token, e.g. ``build_special_token("END") == "<graphai:END:>"``."""
        params_str = ",".join(f"{k}={v}" for k, v in params.items()) if params else ""
        return self.special_token_format.format(
            identifier=self.identifier or "", token=name, params=params_str
        )

    async def _build_special_token(self, name: str, params: dict[str, Any] | None = None) -> str:
        return self.build_special_token(name, params)

    def _render(self, m: _Marker) -> str:
        key = (m.kind, m.name)
        s = self._tokens_cache.get(key)
        if s is None:
            k = m.kind
            token = (
                f"{m.name}:start" if k == _START else f"{m.name}:end" if k == _END_NODE else m.name
            )
            s = self._tokens_cache[key] = self.build_special_token(token)
        return s

    def _content_formatter(self) -> Callable[[str], str] | None:
        fmt = self._tok_fmt
        if fmt is None:
            return None

        def render(token: str) -> str:
            return fmt.format(token=token)

        return render


class EventCallback(_StreamBase):
    """
    The object-event callback: yields :class:`GraphEvent` objects (``start_node``,
    ``callback``, custom types, ``end_node``, ``end``). ``GraphEvent.encode()`` frames an event
    for server-sent events.

    Args:
        identifier: set on every event (a per-request id, say).
        special_token_format, token_format: accepted for compatibility and ignored.
        max_buffered: optional bound on buffered events (see :class:`Callback`).

    .. versionchanged:: 0.1.0
       No ``DeprecationWarning``; the ``identifier`` argument of ``acall`` is honoured.
    """

    __slots__ = ("events",)
    _id_marker: ClassVar[bool] = False

    def __init__(
        self,
        identifier: str = "graphai",
        special_token_format: str | None = None,
        token_format: str | None = None,
        *,
        max_buffered: int | None = None,
    ) -> None:
        self.events: list[GraphEvent] = []
        self._init_stream(identifier, max_buffered)

    def _view(self, name: str, rec: _hooks.NodeObserver) -> _StreamBase:
        v = super()._view(name, rec)
        assert isinstance(v, EventCallback)
        root = self._root
        assert isinstance(root, EventCallback)
        v.events = root.events
        return v

    def _event(
        self,
        token: str | None,
        type: GraphEventType | str,
        identifier: str | None,
        params: dict[str, Any] | None,
    ) -> GraphEvent:
        return GraphEvent(
            type=type,
            identifier=self.identifier if identifier is None else identifier,
            token=token,
            params=params,
        )

    def __call__(
        self,
        token: str | None = None,
        type: GraphEventType | str = GraphEventType.CALLBACK,
        identifier: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Send an event (sync)."""
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot add tokens to a closed stream")
        self._emit(chan, self._event(token, type, identifier, params), token)

    async def acall(
        self,
        token: str | None = None,
        type: GraphEventType | str = GraphEventType.CALLBACK,
        identifier: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """Send an event. With ``max_buffered`` set, waits while the buffer is full."""
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot add tokens to a closed stream")
        if chan.maxsize is not None and len(chan.buf) >= chan.maxsize:
            await chan.wait_space()
            if chan.closed:
                raise self._closed_error("Cannot add tokens to a closed stream")
        self._emit(chan, self._event(token, type, identifier, params), token)

    async def _build_special_token(self, name: str, params: dict[str, Any] | None = None) -> str:
        raise NotImplementedError("This method is not implemented for the `EventCallback` class.")

    def _render(self, m: _Marker) -> GraphEvent:
        k = m.kind
        if k == _END:
            return GraphEvent(type=GraphEventType.END, identifier=self.identifier)
        t = GraphEventType.START_NODE if k == _START else GraphEventType.END_NODE
        return GraphEvent(type=t, identifier=self.identifier, token=m.name)



class StreamItem(NamedTuple):
    """
    One parsed item of a string stream.

    ``kind`` is ``"start"`` (node start), ``"node"`` (node id), ``"end"`` (node end),
    ``"END"`` (stream end) or ``"token"`` (content); ``node`` is the node name for markers.
    """

    kind: str
    node: str | None
    text: str


def parse_stream_token(token: str, callback: Callback | None = None) -> StreamItem:
    """
    Classify one string from ``Callback.aiter()``: a special token (node start, node id, node
    end, stream END) or content. Works for any ``special_token_format``: pass the callback
    that produced the stream (default: the default format).

    Content that merely *looks* like a special token can only be told apart by position;
    graphai itself never ends a stream on in-band text.

    .. versionadded:: 0.1.0
    """
    if not isinstance(token, str):
        raise TypeError(
            f"parse_stream_token() takes a str from Callback.aiter(), got {type(token).__name__}"
        )
    cb = callback if callback is not None else _DEFAULT_PARSER
    pat = _pattern_for(cb)
    if pat is None:
        return StreamItem("token", None, token)
    prefix, suffix = pat
    if not (token.startswith(prefix) and token.endswith(suffix)) or len(token) < len(prefix) + len(
        suffix
    ):
        return StreamItem("token", None, token)
    body = token[len(prefix) : len(token) - len(suffix)]
    if body == "END":
        return StreamItem("END", None, token)
    if body.endswith(":start"):
        return StreamItem("start", body[: -len(":start")], token)
    if body.endswith(":end"):
        return StreamItem("end", body[: -len(":end")], token)
    return StreamItem("node", body, token)


_DEFAULT_PARSER = Callback()


def _pattern_for(cb: Callback) -> tuple[str, str] | None:
    """(prefix, suffix) around ``{token}`` in the rendered format, or None if no ``{token}``."""
    return _pattern(cb.identifier or "", cb.special_token_format)


@functools.lru_cache(maxsize=256)  # bounded: identifiers may be per-request ids
def _pattern(identifier: str, fmt: str) -> tuple[str, str] | None:
    sentinel = "\x00TOKEN\x00"
    try:
        rendered = fmt.format(identifier=identifier, token=sentinel, params="")
    except (KeyError, IndexError, ValueError):
        return None
    if sentinel not in rendered:
        return None
    pre, post = rendered.split(sentinel, 1)
    return pre, post
