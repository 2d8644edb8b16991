"""
graphai's own warnings and errors (branch failures, telemetry problems).

Through structlog (``structlog.get_logger("graphai")``) when the application configured
structlog; otherwise through the stdlib logger ``graphai``, so an application that never set up
structlog does not get structlog's default printing on stdout.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = [
    "LOG_BRANCH_CONDITION_FAILED",
    "LOG_BRANCH_FAILED",
    "LOG_CLOSE_FAILED",
    "LOG_LATE_TOKEN",
    "log_event",
]

# the engine's own log events (re-exported by graphai.telemetry.names, the one list users read)
LOG_BRANCH_FAILED = "branch.failed"
"""Error: a branch pipeline raised; also recorded in ``Graph.branch_errors``."""
LOG_BRANCH_CONDITION_FAILED = "branch.condition_failed"
"""Error: a branch condition raised; the branch does not run; recorded in ``branch_errors``."""
LOG_CLOSE_FAILED = "callback.close_failed"
"""Warning: a user callback's ``close()`` raised; the run's result or error stands."""
LOG_LATE_TOKEN = "callback.late_token"
"""Warning: a token arrived through a node's callback after the node ended (dropped)."""

_slog = structlog.get_logger("graphai")
_std = logging.getLogger("graphai")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def log_event(level: str, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` at ``level`` (debug/info/warning/error); never raises."""
    try:
        if structlog.is_configured():
            getattr(_slog, level)(event, **fields)
        else:
            lvl = _LEVELS[level]
            if _std.isEnabledFor(lvl):
                _std.log(lvl, "%s %s", event, " ".join(f"{k}={v!r}" for k, v in fields.items()))
    except Exception:
        pass
