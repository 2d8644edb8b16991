"""
Exporter wrappers that count failed exports (``graphai.telemetry.export_failures{signal}``, on
the installed instrumentation's meter: visible on ``/metrics`` while OTLP is down) and report
them as ``telemetry.export_failed`` (warning, at most once a minute per signal, with the number
of failed exports since the last report). They delegate everything else, never raise into the
SDK's export loop, and never change what is exported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from graphai._log import log_event
from graphai.telemetry import _state
from graphai.telemetry import names as N

__all__ = ["FailureReport", "WatchedLogExporter", "WatchedMetricExporter", "WatchedSpanExporter"]

REPORT_EVERY_S = 60.0


class FailureReport:
    """Counts failed exports of one signal; reports the first and then once per interval."""

    def __init__(self, signal: str, every_s: float = REPORT_EVERY_S) -> None:
        self.signal = signal
        self.every_s = every_s
        self.failures = 0
        self._unreported = 0
        self._last = -1e18
        self._lock = threading.Lock()

    def failed(self, exporter: object, error: BaseException | None = None) -> None:
        _count(self.signal)
        with self._lock:
            self.failures += 1
            self._unreported += 1
            now = time.monotonic()
            if now - self._last < self.every_s:
                return
            count, self._unreported, self._last = self._unreported, 0, now
        fields: dict[str, Any] = {
            "signal": self.signal,
            "exporter": type(exporter).__name__,
            "failures": count,
        }
        if error is not None:
            fields["error_type"] = type(error).__name__
        log_event("warning", N.LOG_EXPORT_FAILED, **fields)


def _count(signal: str) -> None:
    try:
        instr = _state.INSTALLED[0]
        inst = instr.instruments() if instr is not None else None
        if inst is not None:
            inst.export_failures.add(1, {N.EXPORT_SIGNAL: signal})
    except Exception:  # counting must never break the export loop; the log line still goes
        pass


class WatchedSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, report: FailureReport | None = None) -> None:
        self.inner = inner
        self.report = report or FailureReport("traces")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:
            self.report.failed(self.inner, exc)
            return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.report.failed(self.inner)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class WatchedMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, report: FailureReport | None = None) -> None:
        # The reader asks the exporter it is given (this wrapper) for the inner exporter's
        # preferences. The SDK takes them as constructor arguments but exposes no public getter
        # (opentelemetry-sdk 1.45: MetricExporter.__init__ only stores them in private
        # attributes), so they are read by name, with the base class default if absent.
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self.inner = inner
        self.report = report or FailureReport("metrics")

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self.report.failed(self.inner, exc)
            return MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self.report.failed(self.inner)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class WatchedLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter, report: FailureReport | None = None) -> None:
        self.inner = inner
        self.report = report or FailureReport("logs")

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        try:
            result = self.inner.export(batch)
        except Exception as exc:
            self.report.failed(self.inner, exc)
            return LogRecordExportResult.FAILURE
        if result is not LogRecordExportResult.SUCCESS:
            self.report.failed(self.inner)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
