"""
structlog processors that correlate log lines with traces and graph runs.

graphai logs through ``structlog.get_logger("graphai")`` and never calls
``structlog.configure()``; it emits only when the application has configured structlog.
Put these processors in your own chain, or call :func:`configure_logging` for a ready one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor, WrappedLogger

from graphai.telemetry.runtime import current_log_context

__all__ = ["add_graph_context", "add_otel_context", "configure_logging"]


def add_otel_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """
    Add ``trace_id`` (32 hex), ``span_id`` (16 hex) and ``trace_flags`` (2 hex) of the
    current span, when one is active and valid.

    .. versionadded:: 0.1.0
    """
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict["trace_id"] = format(ctx.trace_id, "032x")
        event_dict["span_id"] = format(ctx.span_id, "016x")
        event_dict["trace_flags"] = format(int(ctx.trace_flags), "02x")
    return event_dict


def add_graph_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """
    Add ``graphai.graph.name``, ``graphai.run.id`` and ``graphai.node.name`` of the node
    running in this context (keys already in the event win).

    .. versionadded:: 0.1.0
    """
    for k, v in current_log_context().items():
        event_dict.setdefault(k, v)
    return event_dict


def configure_logging(
    json: bool = True,
    level: int | str = logging.INFO,
    extra_processors: Sequence[Processor] = (),
    file: Any = None,
) -> None:
    """
    Configure structlog with a ready chain: context vars, log level, ISO-8601 UTC timestamp,
    :func:`add_otel_context`, :func:`add_graph_context`, your ``extra_processors`` (e.g. the
    OTLP logs processor of ``graphai.telemetry.configure()``), exception formatting, then JSON
    (or console) rendering to ``file`` (default stderr).

    .. versionadded:: 0.1.0
    """
    lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(lvl, int):
        raise ValueError(f"configure_logging(): unknown level {level!r}")
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_otel_context,
        add_graph_context,
        *extra_processors,
        structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file or sys.stderr),
        cache_logger_on_first_use=False,
    )
