"""
Errors raised by graphai.

The hierarchy::

    Exception
     ├── GraphError                   base for graph building and running errors
     │    ├── GraphCompileError        compile() found the graph invalid
     │    ├── MaxStepsError            a run took more than ``max_steps`` transitions
     │    ├── NodeNotFoundError        a name (edge, router choice) names no node (also ValueError)
     │    └── NoOutgoingEdgeError      a non-end node has nowhere to go at run time
     ├── RuntimeError
     │    └── StreamClosedError        token/marker sent to a closed stream
     │         └── ConsumerGoneError   … because the consumer stopped reading (a cancellation outcome)
     ├── TypeError                     wrong argument types to the builder, sync node functions
     └── ValueError                    missing node parameters, non-dict node output, bad formats
          └── TelemetryConfigError     an invalid GRAPHAI_*/OTEL_* variable or configure() argument

``BranchError`` is not an exception: it is the record of a failure inside a branch pipeline,
kept in ``Graph.branch_errors`` instead of being raised (upstream behaviour).

The message texts match graphai-lib 0.0.12 wherever upstream defines one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BranchError",
    "ConsumerGoneError",
    "GraphCompileError",
    "GraphError",
    "MaxStepsError",
    "NoOutgoingEdgeError",
    "NodeNotFoundError",
    "StreamClosedError",
    "TelemetryConfigError",
]


class GraphError(Exception):
    """Base class for errors raised while building or running a graph."""


class GraphCompileError(GraphError):
    """``Graph.compile()`` found the graph invalid; the message says why."""


class MaxStepsError(GraphError):
    """A run exceeded the graph's ``max_steps`` before reaching an end node."""

    def __init__(self, max_steps: int, where: str = "") -> None:
        self.max_steps = max_steps
        suffix = f" in {where}" if where else ""
        super().__init__(
            f"Max steps reached{suffix}: {max_steps}. You can modify this by setting "
            "`max_steps` when initializing the Graph object."
        )


class NodeNotFoundError(GraphError, ValueError):
    """A node name given to the builder or chosen by a router names no node of the graph."""


class NoOutgoingEdgeError(GraphError):
    """A node that is not an end node has no successor at run time."""


class StreamClosedError(RuntimeError):
    """A token or node marker was sent to a callback whose stream is closed."""


class ConsumerGoneError(StreamClosedError):
    """
    The consumer of ``aiter()`` stopped reading (it broke out, was cancelled or closed the
    iterator) while the producer was still streaming. The engine records the node and the run
    as ``cancelled``, not as errors.
    """


class TelemetryConfigError(ValueError):
    """
    An invalid telemetry setting: a ``GRAPHAI_*`` or ``OTEL_*`` environment variable, or a
    ``graphai.telemetry.configure()`` argument. The message starts with the variable (or
    argument) name and the value, e.g. ``OTEL_EXPORTER_OTLP_PROTOCOL='bogus': expected one of
    grpc, http/protobuf``. Raised by ``configure()`` (before anything is started) and by
    ``graphai.telemetry.env.from_env(strict=True)``; ``import graphai`` never raises it (an
    invalid ``GRAPHAI_*`` value there logs ``telemetry.config_invalid`` and uses the default).
    A ``ValueError``, so ``except ValueError`` keeps working.

    .. versionadded:: 0.1.0
    """


@dataclass
class BranchError:
    """A failure inside a branch pipeline, recorded instead of raised so the main path is never
    taken down by a side pipeline."""

    source: str
    destination: str
    error: Exception
