"""
Callbacks: the stream between a graph's nodes and its consumer (the public classes).

Internally a callback carries typed items (node start, node id, node end, stream end markers
and content tokens) through a :class:`~graphai._channel.Channel`. Strings such as
``<graphai:NAME:start:>`` are rendered only at the consumer edge, in :meth:`Callback.aiter`, so
a content token that happens to equal a special-token string is never mistaken for one. The
machinery (views, ``aiter()``, sub-steps, the runner's seam) is in :mod:`graphai._stream`; format
checks and the parser in :mod:`graphai._tokens`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol, runtime_checkable

from graphai._channel import ChannelStatistics, Timed
from graphai._stream.base import LateToken, StreamBase
from graphai._stream.markers import _END, _END_NODE, _START, _Marker
from graphai._tokens import (
    DEFAULT_SPECIAL_TOKEN_FORMAT,
    DEFAULT_TOKEN_FORMAT,
    StreamItem,
    check_format,
    check_special_format,
    parse_stream_token,
)

__all__ = [
    "DEFAULT_SPECIAL_TOKEN_FORMAT",
    "DEFAULT_TOKEN_FORMAT",
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

    @property
    def queue(self) -> Any: ...

    async def start_node(self, node_name: str, active: bool = True) -> None: ...
    async def end_node(self, node_name: str) -> None: ...
    async def close(self) -> None: ...


class Callback(StreamBase):
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

    __slots__ = ("_special_token_format", "_tok_fmt", "_token_format", "_tokens_cache")
    _native_root: ClassVar[bool] = True
    _shared_slots: ClassVar[tuple[str, ...]] = (
        "_special_token_format",
        "_tok_fmt",
        "_token_format",
        "_tokens_cache",
    )

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
        check_special_format(special_token_format, identifier)
        self._tok_fmt = check_format(token_format, "token_format", {"token": "token"})
        self._special_token_format = special_token_format
        self._token_format = token_format
        self._tokens_cache: dict[tuple[int, str, str | None, str], str] = {}
        self._init_stream(identifier, max_buffered)

    @property
    def special_token_format(self) -> str:
        """The format of special tokens; assigning one validates it (``ValueError``)."""
        return self._special_token_format

    @special_token_format.setter
    def special_token_format(self, value: str) -> None:
        check_special_format(value, self.identifier)
        self._special_token_format = value

    @property
    def token_format(self) -> str:
        """The format of string content tokens; assigning one validates it and applies to
        what ``aiter()`` yields from then on (an ``aiter()`` already running keeps its own)."""
        return self._token_format

    @token_format.setter
    def token_format(self, value: str) -> None:
        self._tok_fmt = check_format(value, "token_format", {"token": "token"})
        self._token_format = value

    def __call__(self, token: Any, node_name: str | None = None) -> None:
        """Send a token (sync). Ignores ``max_buffered`` (a sync call cannot wait)."""
        chan = self._chan
        if chan.closed:
            raise self._closed_error("Cannot add tokens to a closed stream")
        if node_name:
            self._check_node_name(node_name)
        if self._root is not self:
            rec = self._rec  # ENDED once the node ended: its token() raises LateToken
        else:
            late = self._late_view()
            if late is not None:
                return self._drop_late(late)
            rec = self._observer()
        if rec is not None:
            try:
                t = rec.token(token)
            except LateToken:
                return self._drop_late(self)
            if t is not None:
                token = Timed(token, t)
        chan.buf.append(token)
        w = chan.waiter
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
            rec = self._rec  # ENDED once the node ended: its token() raises LateToken
        else:
            late = self._late_view()
            if late is not None:
                return self._drop_late(late)
            rec = self._observer()
        if rec is not None:
            try:
                t = rec.token(token)
            except LateToken:
                return self._drop_late(self)
            if t is not None:
                token = Timed(token, t)
        chan.buf.append(token)
        w = chan.waiter
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
        key = (m.kind, m.name, self.identifier, self._special_token_format)
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


class EventCallback(StreamBase):
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
    _native_root: ClassVar[bool] = True
    _shared_slots: ClassVar[tuple[str, ...]] = ("events",)

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
