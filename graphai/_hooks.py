"""
The one seam between the engine and its instrumentation.

The engine calls exactly these methods; it knows nothing of OpenTelemetry. The base classes here
are the no-op implementation used when telemetry is off; ``graphai.telemetry`` installs real
ones. Every method of an observer must be safe to call from any exit path and must never raise
(telemetry never changes a graph's result or its token stream).

Seams:
- a run starts: ``Instrumentation.run(...)`` -> ``RunObserver``; it ends: ``RunObserver.end``.
- a node run starts: ``RunObserver.node(...)`` -> ``NodeObserver`` (opened when the node's start
  marker is emitted); it ends, with its outcome, in ``NodeObserver.end`` (when its end marker is
  emitted).
- a token is emitted: ``NodeObserver.token(token)`` -- the hot path.
- a node is started on a standalone Callback: ``Instrumentation.standalone_node(name)``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CANCELLED",
    "ERROR",
    "NOOP",
    "OK",
    "Instrumentation",
    "JoinInfo",
    "NodeObserver",
    "RunObserver",
    "get_instrumentation",
    "peek_instrumentation",
    "set_instrumentation",
]

OK = "ok"
ERROR = "error"
CANCELLED = "cancelled"


class JoinInfo:
    """What a join node waited for: the observers of the last node of each path, and the time
    from the first path finishing to the last."""

    __slots__ = ("observers", "wait_s")

    def __init__(self, observers: list[NodeObserver], wait_s: float) -> None:
        self.observers = observers
        self.wait_s = wait_s


class NodeObserver:
    """One node run. No-op base."""

    __slots__ = ()

    def token(self, token: Any) -> float | None:
        """A content token was emitted by this node (hot path: local bookkeeping only).
        Returning a ``perf_counter()`` time asks for a delivery-delay sample of this token."""
        return None

    def late_token(self) -> None:
        """A token arrived through this node's view after the node ended; it was dropped."""

    def attach(self) -> object:
        """Make this node's span current; returns a token for ``detach``."""
        return None

    def detach(self, token: object) -> None:
        """Undo ``attach`` (same task, same context)."""

    def router_choice(self, choice: Any) -> None:
        """A router chose the next node(s)."""

    def end(
        self,
        outcome: str,
        error: BaseException | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        """The node run ended (``output`` on success); called exactly once."""


class RunObserver:
    """One graph run. No-op base."""

    __slots__ = ()

    def node(
        self,
        name: str,
        kind: str,
        stream: bool,
        step: int,
        join: JoinInfo | None = None,
        payload: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> NodeObserver:
        return NOOP_NODE

    def channel(self, channel: Any) -> None:
        """The run streams into this channel (delivery-delay sampling hook)."""

    def end(
        self,
        outcome: str,
        error: BaseException | None = None,
        steps: int = 0,
        result: dict[str, Any] | None = None,
    ) -> None:
        """The run ended; called exactly once."""


class Instrumentation:
    """Factory of observers. No-op base."""

    enabled = False

    def run(self, graph_name: str, run_id: str, payload: dict[str, Any]) -> RunObserver:
        return NOOP_RUN

    def standalone_node(self, name: str, owner: object | None = None) -> NodeObserver:
        """A node started by user code outside a graph run. ``owner`` (the callback) is held
        weakly: an owner dropped with the node still open ends it (as cancelled) at the
        instrumentation's next safe point, never in a finalizer."""
        return NOOP_NODE


NOOP_NODE = NodeObserver()
NOOP_RUN = RunObserver()
NOOP = Instrumentation()

# ``None`` until the first use resolves the default (``graphai.telemetry``), so importing graphai
# does no telemetry work and cannot fail because of it
_current: list[Instrumentation | None] = [None]


def get_instrumentation() -> Instrumentation:
    cur = _current[0]
    return cur if cur is not None else _resolve_default()


def _resolve_default() -> Instrumentation:
    try:
        from graphai.telemetry._instrumentation import install_default

        instr = install_default()
    except Exception:  # telemetry never stops the engine: run without it
        instr = NOOP
    cur = _current[0]
    if cur is None:
        _current[0] = cur = instr
    return cur


def peek_instrumentation() -> Instrumentation | None:
    """The installed instrumentation without resolving the default (``None``: unresolved)."""
    return _current[0]


def set_instrumentation(instr: Instrumentation | None) -> Instrumentation | None:
    """Install ``instr`` (``None``: back to an unresolved default); returns the previous one."""
    prev = _current[0]
    _current[0] = instr
    return prev
