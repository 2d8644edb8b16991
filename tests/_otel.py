"""In-memory OpenTelemetry signals for tests: explicit providers, never the globals.

A thin layer over the public :func:`graphai.telemetry.testing.capture_telemetry` (started on
construction, without log capture: tests here drive structlog themselves); ``close()`` puts
back the instrumentation installed before and shuts the providers down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from graphai.telemetry import env
from graphai.telemetry.testing import TelemetryCapture, capture_telemetry


class Signals:
    def __init__(self, settings: env.Settings | None = None) -> None:
        # ``None``: the environment's settings, as ``instrument()`` reads them
        self.capture: TelemetryCapture = capture_telemetry(
            settings=settings if settings is not None else env.from_env(), logs=False
        ).start()
        self.exporter: InMemorySpanExporter = self.capture.exporter
        self.tp: TracerProvider = self.capture.tracer_provider
        self.reader: InMemoryMetricReader = self.capture.reader
        self.mp: MeterProvider = self.capture.meter_provider
        self.instr = self.capture.instrumentation

    def spans(self) -> list[ReadableSpan]:
        return self.capture.spans()

    def span(self, name: str) -> ReadableSpan:
        return self.capture.span(name)

    def points(self, metric: str) -> list[Any]:
        """Data points of one metric (empty when not recorded)."""
        return list(self.capture.metric(metric))

    def point(self, metric: str, **attrs: Any) -> Any:
        """The one data point of ``metric`` whose attributes include ``attrs`` (keys with dots
        given with ``__`` for ``.``)."""
        found = self.capture.metric(metric, **attrs)
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        assert len(found) == 1, f"{metric} {want}: {[dict(p.attributes or {}) for p in self.points(metric)]}"
        return found[0]

    def close(self) -> None:
        """Restore the previous instrumentation, shut the providers down (idempotent)."""
        self.capture.stop()


@pytest.fixture
def signals() -> Iterator[Signals]:
    s = Signals()
    yield s
    s.close()


def make_signals(settings: env.Settings | None = None) -> Signals:
    return Signals(settings)
