"""
In-memory telemetry for your own tests (extra ``[otel]``), in the spirit of
``structlog.testing.capture_logs``::

    from graphai.telemetry.testing import capture_telemetry

    async def test_my_agent():
        with capture_telemetry() as t:          # or: async with capture_telemetry() as t
            await my_graph.execute({"q": "hi"}, callback=cb)
        assert t.span("invoke_agent planner").attributes["graphai.node.outcome"] == "ok"
        assert t.value("graphai.node.duration", **{"graphai.node.name": "planner"}) == 1
        assert any(e["event"] == "node.end" for e in t.logs)

:func:`capture_telemetry` builds an SDK ``TracerProvider`` (``SimpleSpanProcessor`` into an
``InMemorySpanExporter``) and a ``MeterProvider`` with an ``InMemoryMetricReader``, installs
them into graphai only (``graphai.telemetry.instrument(tracer_provider=..., meter_provider=...)``;
the global OpenTelemetry providers are never read or set) and captures structlog's lines like
``structlog.testing.capture_logs()``. On exit it puts back the instrumentation that was
installed before (the same object, or "never resolved", or ``uninstrument()``-ed), the
structlog configuration, and shuts its providers down. Captures nest: the inner one sees only
what ran inside it, and restores the outer one. Not thread-safe (like ``capture_logs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import structlog
from structlog.testing import LogCapture
from structlog.typing import EventDict, Processor

from graphai._dist import INSTALL_OTEL

try:  # the [otel] extra
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        DataPointT,
        ExponentialHistogramDataPoint,
        HistogramDataPoint,
        InMemoryMetricReader,
        MetricsData,
    )
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
except ImportError as _exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        "graphai.telemetry.testing needs the OpenTelemetry SDK, the [otel] extra: "
        f"{INSTALL_OTEL} (missing: {_exc.name or _exc})",
        name=_exc.name,
    ) from _exc

from graphai import _hooks
from graphai.telemetry import _state, env
from graphai.telemetry._instrumentation import OTelInstrumentation, instrument

__all__ = [
    "InstrumentationState",
    "TelemetryCapture",
    "capture_telemetry",
    "restore_instrumentation",
    "save_instrumentation",
]


@dataclasses.dataclass(frozen=True)
class InstrumentationState:
    """What :func:`save_instrumentation` saw: the installed OpenTelemetry instrumentation
    (``None``: none) and the engine's current one (``None``: the default was never resolved;
    the no-op after ``uninstrument()``)."""

    installed: OTelInstrumentation | None
    current: _hooks.Instrumentation | None


def save_instrumentation() -> InstrumentationState:
    """The instrumentation graphai reports to right now, for :func:`restore_instrumentation`.
    Resolves nothing: a never-resolved default stays unresolved."""
    return InstrumentationState(_state.INSTALLED[0], _hooks.peek_instrumentation())


def restore_instrumentation(state: InstrumentationState) -> None:
    """Put back exactly what :func:`save_instrumentation` saw (the same objects)."""
    _state.INSTALLED[0] = state.installed
    _hooks.set_instrumentation(state.current)


def _key(attr: str) -> str:
    # ``graphai__node__name=...`` for ``graphai.node.name`` (keywords cannot hold dots)
    return attr.replace("__", ".")


class TelemetryCapture:
    """
    The spans, metrics and log lines of the graph runs inside one :func:`capture_telemetry`
    block. Readable inside the block and after it (metrics as collected at exit).

    Attributes:
        tracer_provider, meter_provider: the SDK providers installed into graphai.
        exporter: the ``InMemorySpanExporter``; reader: the ``InMemoryMetricReader``.
        settings: the :class:`graphai.telemetry.env.Settings` in effect.
        instrumentation: the installed instrumentation (``None`` while not started, or with
            ``settings.enabled=False``).
        logs: structlog event dicts logged inside the block (``"event"``, ``"log_level"`` and
            the fields), as ``structlog.testing.capture_logs()`` returns them; empty with
            ``logs=False``.
    """

    def __init__(
        self,
        settings: env.Settings,
        logs: bool = True,
        log_processors: Iterable[Processor] = (),
    ) -> None:
        self.settings = settings
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)
        self.instrumentation: OTelInstrumentation | None = None
        self.logs: list[EventDict] = []
        self._capture_logs = logs
        self._log_processors = tuple(log_processors)
        self._saved: InstrumentationState | None = None
        self._stack: contextlib.ExitStack | None = None
        self._metrics: MetricsData | None = None
        self._state = "new"

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> TelemetryCapture:
        """Install the providers (what entering the ``with`` block does); once only."""
        if self._state != "new":
            raise RuntimeError("a TelemetryCapture can be started only once")
        self._state = "started"
        self._saved = saved = save_instrumentation()
        stack = contextlib.ExitStack()
        try:
            stack.callback(self._finish, saved)
            self.instrumentation = instr = instrument(
                tracer_provider=self.tracer_provider,
                meter_provider=self.meter_provider,
                settings=self.settings,
            )
            if instr is not None and saved.installed is not None:
                # ``instrument()`` shares the previous one's label set (gauge series): give this
                # capture its own, so the labels of its runs never leak into the outer one
                instr.seen_labels = set()
            if self._capture_logs:
                stack.enter_context(_captured_structlog(self.logs, self._log_processors))
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def stop(self) -> None:
        """Restore the previous instrumentation and structlog configuration, shut the
        providers down (what leaving the ``with`` block does); idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def _finish(self, saved: InstrumentationState) -> None:
        try:
            # collected while this capture is still installed: its gauges report
            self._metrics = self.reader.get_metrics_data()
        finally:
            restore_instrumentation(saved)
            self._state = "stopped"
            self.tracer_provider.shutdown()
            self.meter_provider.shutdown()

    def __enter__(self) -> TelemetryCapture:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> TelemetryCapture:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- spans -------------------------------------------------------------------------------
    def spans(self, name: str | None = None, /) -> list[ReadableSpan]:
        """The finished spans in end order (a node span ends before its run span), optionally
        only those called ``name``."""
        spans = list(self.exporter.get_finished_spans())
        return spans if name is None else [s for s in spans if s.name == name]

    def span(self, name: str, /) -> ReadableSpan:
        """The one finished span called ``name``; ``AssertionError`` naming the spans seen
        when there is none or more than one."""
        found = self.spans(name)
        if len(found) != 1:
            seen = [s.name for s in self.spans()]
            raise AssertionError(
                f"expected exactly one span {name!r}, found {len(found)}; spans seen: {seen}"
            )
        return found[0]

    # -- metrics -----------------------------------------------------------------------------
    def _data(self) -> MetricsData | None:
        return self._metrics if self._state == "stopped" else self.reader.get_metrics_data()

    def metric_names(self) -> list[str]:
        """The names of the metrics recorded so far."""
        data = self._data()
        if data is None:
            return []
        return sorted(
            {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        )

    def metric(self, name: str, /, **attrs: Any) -> list[DataPointT]:
        """The data points of metric ``name`` whose attributes include ``attrs`` (empty when
        none). Dotted keys: ``**{"graphai.node.name": "plan"}`` or ``graphai__node__name="plan"``."""
        want = {_key(k): v for k, v in attrs.items()}
        data = self._data()
        if data is None:
            return []
        return [
            p
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == name
            for p in m.data.data_points
            if all(p.attributes is not None and p.attributes.get(k) == v for k, v in want.items())
        ]

    def value(self, name: str, /, **attrs: Any) -> float:
        """Over the points :meth:`metric` returns: the sum of a counter's (or gauge's) values,
        or of a histogram's counts (the number of recordings); ``0`` when there is none."""
        total: float = 0
        for p in self.metric(name, **attrs):
            if isinstance(p, (HistogramDataPoint, ExponentialHistogramDataPoint)):
                total += p.count
            else:
                total += p.value
        return total


@contextlib.contextmanager
def _captured_structlog(
    entries: list[EventDict], processors: tuple[Processor, ...]
) -> Iterator[None]:
    """What ``structlog.testing.capture_logs()`` does, into ``entries`` (live inside the
    block), then structlog as it was, unconfigured included (graphai logs its run and node
    lines only when structlog is configured)."""
    was_configured = structlog.is_configured()
    cap = LogCapture()
    cap.entries = entries
    # like capture_logs: keep the processors list instance (bound loggers hold it)
    configured = structlog.get_config()["processors"]
    old = list(configured)
    configured.clear()
    configured.extend(processors)
    configured.append(cap)
    structlog.configure(processors=configured)
    try:
        yield
    finally:
        configured.clear()
        configured.extend(old)
        if was_configured:
            structlog.configure(processors=configured)
        else:
            structlog.reset_defaults()


def capture_telemetry(
    *,
    settings: env.Settings | None = None,
    capture_content: bool | None = None,
    token_events: str | None = None,
    logs: bool = True,
    log_processors: Iterable[Processor] = (),
) -> TelemetryCapture:
    """
    In-memory spans, metrics and logs of the graph runs inside the block, for tests; the
    global OpenTelemetry providers are never touched. A context manager (``with`` or
    ``async with``) returning a :class:`TelemetryCapture`; or call ``start()`` / ``stop()``.

    Args:
        settings: the :class:`graphai.telemetry.env.Settings` to instrument with (default:
            ``Settings()``, the documented defaults, whatever ``GRAPHAI_*`` variables the
            environment sets; pass ``env.from_env()`` to read them).
        capture_content, token_events: override these two fields of ``settings``
            (``token_events``: ``capped``, ``sampled``, ``all`` or ``off``).
        logs: capture structlog's lines (default ``True``), as ``capture_logs()`` does: its
            processors are replaced by ``log_processors`` and the capture for the block, and
            graphai's run and node lines flow even when structlog was never configured.
            ``False`` leaves structlog alone.
        log_processors: processors to run before an event dict is captured (e.g.
            ``graphai.telemetry.logging.add_otel_context``).

    .. versionadded:: 0.1.0
    """
    s = settings if settings is not None else env.Settings()
    if capture_content is not None:
        s = dataclasses.replace(s, capture_content=capture_content)
    if token_events is not None:
        if token_events not in env.TOKEN_EVENT_POLICIES:
            raise ValueError(
                f"token_events={token_events!r}: expected one of "
                + ", ".join(env.TOKEN_EVENT_POLICIES)
            )
        s = dataclasses.replace(s, token_events=token_events)
    return TelemetryCapture(s, logs=logs, log_processors=log_processors)
