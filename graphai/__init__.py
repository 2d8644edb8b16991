"""
graphai: async streaming LLM/agent graphs that observe themselves.

A drop-in replacement for graphai-lib 0.0.12 (same import name and API) whose Graph and
Callback emit OpenTelemetry spans, per-token events and latency metrics.
"""

from __future__ import annotations

from graphai import _dist  # noqa: F401  (first: logs install.conflict if graphai-lib is installed too)
from graphai.callback import (
    Callback,
    EventCallback,
    GraphEvent,
    GraphEventType,
    StreamItem,
    parse_stream_token,
)
from graphai.errors import (
    BranchError,
    ConsumerGoneError,
    GraphCompileError,
    GraphError,
    MaxStepsError,
    NodeNotFoundError,
    NoOutgoingEdgeError,
    StreamClosedError,
    TelemetryConfigError,
)
from graphai.graph import Graph
from graphai.nodes import node, router
from graphai.schema import FunctionSchema, get_schemas

# No telemetry work here: the engine's first run installs the default instrumentation (the
# OpenTelemetry API's global providers, resolved per run) unless GRAPHAI_TELEMETRY=off or the
# application installed or removed one. Without an SDK every call is a no-op.

__version__ = "0.1.0"

__all__ = [
    "BranchError",
    "Callback",
    "ConsumerGoneError",
    "EventCallback",
    "FunctionSchema",
    "Graph",
    "GraphCompileError",
    "GraphError",
    "GraphEvent",
    "GraphEventType",
    "MaxStepsError",
    "NoOutgoingEdgeError",
    "NodeNotFoundError",
    "StreamClosedError",
    "StreamItem",
    "TelemetryConfigError",
    "__version__",
    "get_schemas",
    "node",
    "parse_stream_token",
    "router",
]
