"""The typed markers of a stream (rendered to strings or events only at the consumer's edge)."""

from __future__ import annotations

import types
from collections.abc import Generator

__all__ = ["_END", "_END_MARKER", "_END_NODE", "_ID", "_START", "_Marker", "_yield_once"]

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

@types.coroutine
def _yield_once() -> Generator[None, None, None]:
    """One bare trip through the event loop (what ``asyncio.sleep(0)`` does)."""
    yield
