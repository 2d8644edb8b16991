"""
The one guard at the telemetry seam, and the boundary checks every signal shares.

- :func:`seam`: wraps each observer call the engine makes (and each phase of an end); a failure
  goes to :func:`internal_error`, which increments ``graphai.telemetry.internal_errors{where}``
  and logs at most once a minute per place, never reaching the graph. On the per-node hot path
  (``RunObs.node``, ``NodeObs.attach`` / ``detach`` / ``end`` and the node's span and metric
  writers) the same guard is written inline, a ``try`` per phase ending in
  :func:`internal_error`: a wrapper frame per call cost about 0.8 µs per node (3 % of its
  telemetry cost). ``tests/telemetry/test_seam_guard.py::TestEveryNodePhaseGuarded`` holds
  each inline phase to the wrapper's contract.
- :func:`clean`: text every exporter can encode (lone surrogates escaped).
- :func:`truncate`: captured content as bounded text, never raising.
- :func:`record_exception`: exception events without content while capture is off.
- :class:`LabelGuard`: the metric-attribute cardinality cap.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import traceback
from collections.abc import Callable, Iterator
from time import perf_counter
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import trace

from graphai._log import log_event
from graphai.telemetry import _state
from graphai.telemetry import names as N

__all__ = [
    "LOG_EVERY_S",
    "LabelGuard",
    "clean",
    "current_span",
    "internal_error",
    "record_exception",
    "redacted_trace",
    "safe_log",
    "seam",
    "truncate",
]

LOG_EVERY_S = 60.0
"""An internal error is logged at most once per this many seconds per place."""
# where -> [time of the last log line, failures not logged since]
_logged: dict[str, list[float]] = {}
_errors_lock = threading.Lock()


def internal_error(where: str, exc: BaseException) -> None:
    """Count a telemetry failure (``graphai.telemetry.internal_errors``) and log it at most once
    a minute per place (with the number suppressed since the last line); never raise."""
    try:
        instr = _state.INSTALLED[0]
        inst = instr.instruments() if instr is not None else None
        if inst is not None:
            inst.internal_errors.add(1, {N.INTERNAL_ERROR_WHERE: where})
    except Exception:
        pass
    now = perf_counter()
    with _errors_lock:
        last = _logged.get(where)
        if last is not None and now - last[0] < LOG_EVERY_S:
            last[1] += 1
            return
        suppressed = int(last[1]) if last is not None else 0
        _logged[where] = [now, 0]
    fields: dict[str, Any] = {"where": where, "error_type": type(exc).__name__}
    if suppressed:
        fields["suppressed"] = suppressed
    log_event("warning", N.LOG_INTERNAL_ERROR, **fields)  # never raises


_F = TypeVar("_F", bound=Callable[..., Any])


def seam(where: str, default: Any = None) -> Callable[[_F], _F]:
    """The one guard: ``where``'s failures are counted and logged, ``default`` returned."""

    def deco(fn: _F) -> _F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                internal_error(where, exc)
                return default

        return cast(_F, guarded)

    return deco


@seam("log")
def safe_log(log: Any, level: str, event: str, **fields: Any) -> None:
    """A structlog line of ours: a raising processor or renderer costs the line, nothing else."""
    getattr(log, level)(event, **fields)


def clean(value: str) -> str:
    """``value`` as exportable text: lone surrogates (``surrogateescape`` names, say) cannot be
    encoded as UTF-8 and would fail every Prometheus scrape and OTLP export; they are written
    as ``\\udcff`` escapes, so distinct names stay distinct."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def redacted_trace(error: BaseException) -> str:
    """A stack trace without the exception's message (it may hold content): the frames, then
    the exception type."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    return f"Traceback (most recent call last):\n{frames}{_exc_type(error)}"


def _exc_type(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


def record_exception(span: Any, error: BaseException, capture: bool) -> None:
    """The exception event; with content capture off the message is redacted and the stack
    trace has no message lines (exception messages often quote inputs)."""
    if capture:
        span.record_exception(error)
        return
    span.add_event(
        "exception",
        {
            "exception.type": _exc_type(error),
            "exception.message": N.REDACTED,
            "exception.stacktrace": redacted_trace(error),
            "exception.escaped": "False",
        },
    )


@contextlib.contextmanager
def current_span(span: Any) -> Iterator[None]:
    """Make ``span`` current for the lines logged at its end (trace/span ids in those logs)."""
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def truncate(value: Any, limit: int) -> str:
    """Captured content as text (JSON, else ``repr``), cut at ``limit``; never raises: a value
    whose ``repr()`` raises becomes ``<unrepresentable TYPE>`` (and is counted)."""
    if isinstance(value, str):
        s = value
    else:
        try:
            s = json.dumps(value, default=repr, ensure_ascii=False, sort_keys=True)
        except Exception:
            try:
                s = repr(value)
            except Exception as exc:
                internal_error("capture", exc)
                s = f"<unrepresentable {type(value).__name__}>"
    s = clean(s)
    return s if len(s) <= limit else s[:limit] + "…"


class LabelGuard:
    """Cardinality guard: at most ``limit`` distinct values per attribute, then ``_OTHER``;
    ``graphai.telemetry.label_overflow`` counts each distinct replaced value once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: dict[str, set[str]] = {}
        self.rejected: set[tuple[str, str]] = set()
        self.overflow: Any = None  # the overflow counter, set with the instruments
        self._lock = threading.Lock()

    def __call__(self, attribute: str, value: str) -> str:
        seen = self.seen.get(attribute)
        if seen is not None and value in seen:
            return value
        value = clean(value)
        with self._lock:
            seen = self.seen.setdefault(attribute, set())
            if value in seen:
                return value
            if len(seen) < self.limit:
                seen.add(value)
                return value
            # count each replaced value once; memory is bounded: past REJECTED_MAX distinct
            # replaced values, new ones are no longer counted (never counted twice)
            key = (attribute, value)
            if key in self.rejected or len(self.rejected) >= self.REJECTED_MAX:
                return N.OTHER
            self.rejected.add(key)
        if self.overflow is not None:
            self._count(attribute)
        return N.OTHER

    REJECTED_MAX = 100_000

    @seam("overflow")
    def _count(self, attribute: str) -> None:
        self.overflow.add(1, {N.OVERFLOW_ATTRIBUTE: attribute})


