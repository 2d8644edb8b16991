"""
The stream room: typed markers, per-node views and ``aiter()`` (:mod:`.base`), and the seam
through which the runner opens and closes a node's part of the stream (:mod:`.seam`).

Views are instances of the callback's own class, so these modules read and set the private
state of instances other than ``self`` (a view's root, a view). That is their job, and they
are the only modules allowed to: ruff's SLF001 is on for the rest of ``graphai/``.
"""

from __future__ import annotations

from graphai._stream.base import StreamBase
from graphai._stream.markers import _END, _END_NODE, _ID, _START, _Marker
from graphai._stream.seam import (
    ForeignStream,
    NativeStream,
    Opened,
    close_callback,
    discard_unread,
    node_stream,
)

__all__ = [
    "ForeignStream",
    "NativeStream",
    "Opened",
    "StreamBase",
    "close_callback",
    "discard_unread",
    "node_stream",
]

# marker kinds, for callback.py's renderers
MARKERS = (_START, _ID, _END_NODE, _END, _Marker)
