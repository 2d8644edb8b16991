"""
structlog -> OpenTelemetry logs: :class:`OTelLogsProcessor` and the level -> severity mapping.

Uses the OpenTelemetry logs *API* only; ``graphai.telemetry.configure()`` hands it the SDK
``LoggerProvider`` it built (``handle.log_processor``).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import _logs
from opentelemetry._logs import SeverityNumber

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["OTelLogsProcessor"]

_SEVERITY: Final = {
    "trace": SeverityNumber.TRACE, "debug": SeverityNumber.DEBUG, "info": SeverityNumber.INFO,
    "msg": SeverityNumber.INFO, "warning": SeverityNumber.WARN, "warn": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR, "exception": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL, "fatal": SeverityNumber.FATAL,
}  # fmt: skip
_TEXT: Final = {"msg": "INFO", "warn": "WARNING", "exception": "ERROR", "fatal": "CRITICAL"}
# carried by the record itself (body, severity, timestamp, trace context, scope, exception)
_RESERVED: Final = frozenset(
    {"event", "level", "timestamp", "exc_info", "stack_info", "exception", "logger",
     "logger_name", "trace_id", "span_id", "trace_flags"}
)  # fmt: skip
_MAX_ATTRIBUTES: Final = 128  # the SDK's default LogRecordLimits: more would be dropped + warned
_INT64: Final = 2**63


class OTelLogsProcessor:
    """
    A structlog processor that forwards each event to OpenTelemetry logs.

    Each event dict becomes one ``LogRecord``: body = the event name, severity from the level,
    trace and span ids from the current OpenTelemetry context, attributes = the event's
    primitive values (``str``, ``bool``, ``int``, ``float``; others are left out), and
    ``exc_info`` as the ``exception.*`` attributes. The event dict is returned unchanged, so
    put the processor anywhere before the renderer. It never raises: a record that cannot be
    built is counted in :attr:`dropped`.

    Args:
        logger_provider: where records go; ``None`` makes the processor a pass-through.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_closed", "_loggers", "_provider", "dropped")

    def __init__(self, logger_provider: _logs.LoggerProvider | None) -> None:
        self._provider = logger_provider
        self._loggers: dict[str, _logs.Logger] = {}
        self._closed = logger_provider is None
        self.dropped = 0

    def close(self) -> None:
        """Stop forwarding (the handle calls this at shutdown); events still pass through."""
        self._closed = True

    def _logger(self, name: str) -> _logs.Logger:
        lg = self._loggers.get(name)
        if lg is None:
            assert self._provider is not None
            lg = self._provider.get_logger(name)
            if len(self._loggers) < 64:
                self._loggers[name] = lg
        return lg

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if self._closed:
            return event_dict
        try:
            level = event_dict.get("level")
            level = level.lower() if isinstance(level, str) else method_name
            attrs: dict[str, str | bool | int | float] = {}
            for key, value in event_dict.items():
                if len(attrs) >= _MAX_ATTRIBUTES:
                    break
                if key in _RESERVED or not isinstance(value, (str, bool, int, float)):
                    continue
                if isinstance(value, int) and not -_INT64 <= value < _INT64:
                    continue  # OTLP attributes are int64
                attrs[key] = value
            exc = _exception(event_dict.get("exc_info"))
            text = event_dict.get("exception")
            if exc is None and isinstance(text, str) and len(attrs) < _MAX_ATTRIBUTES:
                attrs["exception.stacktrace"] = text  # format_exc_info ran before us
            event = event_dict.get("event")
            name = event_dict.get("logger") or event_dict.get("logger_name")
            self._logger(name if isinstance(name, str) else "structlog").emit(
                timestamp=time.time_ns(),
                severity_number=_SEVERITY.get(level, SeverityNumber.UNSPECIFIED),
                severity_text=_TEXT.get(level, level.upper()),
                body=event if isinstance(event, (str, bool, int, float)) else str(event),
                attributes=attrs,
                exception=exc,
            )
        except Exception:
            self.dropped += 1
        return event_dict


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None
