"""
Compatibility facade: the instrumentation runtime now lives in rooms of its own
(``_instrumentation``, ``_observers``, ``tracing``, ``metrics``, ``_log_lines``, ``streams``,
``_guard``); this module re-exports the public names it always had.
"""

from __future__ import annotations

from graphai.telemetry._guard import LOG_EVERY_S, internal_error
from graphai.telemetry._instrumentation import (
    OTelInstrumentation,
    instrument,
    is_instrumented,
    uninstrument,
)
from graphai.telemetry._observers import current_log_context
from graphai.telemetry.streams import active_streams

__all__ = [
    "LOG_EVERY_S",
    "OTelInstrumentation",
    "active_streams",
    "current_log_context",
    "instrument",
    "internal_error",
    "is_instrumented",
    "uninstrument",
]
