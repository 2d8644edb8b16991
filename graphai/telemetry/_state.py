"""Process-wide telemetry state shared by the telemetry modules (no logic)."""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING

from graphai import _context

if TYPE_CHECKING:
    from graphai.telemetry._instrumentation import OTelInstrumentation

__all__ = ["INSTALLED", "LOG_NODE", "SCHEMA_URL", "VERSION"]


def _version() -> str:
    try:
        return metadata.version("graphai")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


VERSION = _version()
"""The instrumentation scope version: the installed package's version."""
SCHEMA_URL = "https://opentelemetry.io/schemas/1.41.0"
"""The schema of the default GenAI names (semantic-conventions v1.41.0, see names.py)."""

# The installed instrumentation (``instrument()``), or ``None``.
INSTALLED: list[OTelInstrumentation | None] = [None]

# The node run executing in this context (for ``add_graph_context``): one ContextVar holding the
# observer, so attach/detach cost one set/reset.
LOG_NODE = _context.LOG_NODE
