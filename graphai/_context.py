"""
Every ContextVar of the engine, with the reason it exists.

ContextVars follow ``asyncio`` tasks: a task started inside a node (``asyncio.gather``,
``create_task``) copies its creator's context, which is exactly what these need.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphai import _hooks
    from graphai._stream import StreamBase

__all__ = ["CURRENT_VIEW", "ENGINE_NODE", "LOG_NODE", "RUN_ERRORS"]

CURRENT_VIEW: contextvars.ContextVar[StreamBase | None] = contextvars.ContextVar(
    "graphai_current_view", default=None
)
"""The node view running in this context (set by the runner around a node run), so tokens a
node sends through the *root* callback object are still attributed to its node, and tokens
from a task it left running are recognised as late."""

ENGINE_NODE: contextvars.ContextVar[_hooks.NodeObserver | None] = contextvars.ContextVar(
    "graphai_engine_node", default=None
)
"""The observer of the engine node run whose markers a user ``Callback`` subclass (driven
through its own ``start_node``/``end_node``) is emitting: its tokens reach the engine's node
span."""

RUN_ERRORS: contextvars.ContextVar[dict[Any, list[Any]] | None] = contextvars.ContextVar(
    "graphai_run_branch_errors", default=None
)
"""Graph -> the branch-error list of the run this task awaited: ``await graph.execute()`` runs
in the caller's context, so ``graph.branch_errors`` read after it shows that run's errors even
while other tasks run the same Graph."""

LOG_NODE: contextvars.ContextVar[Any] = contextvars.ContextVar("graphai_log_node", default=None)
"""The telemetry observer of the node running in this context, for the structlog processor
``add_graph_context`` (one set/reset per node run)."""
