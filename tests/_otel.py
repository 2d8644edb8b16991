"""In-memory OpenTelemetry signals for tests: explicit providers, never the globals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import graphai.telemetry as telemetry
from graphai.telemetry import env


class Signals:
    def __init__(self, settings: env.Settings | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.tp = TracerProvider()
        self.tp.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.mp = MeterProvider(metric_readers=[self.reader])
        self.instr = telemetry.instrument(tracer_provider=self.tp, meter_provider=self.mp, settings=settings)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def points(self, metric: str) -> list[Any]:
        """Data points of one metric (empty when not recorded)."""
        data = self.reader.get_metrics_data()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend(m.data.data_points)
        return out

    def point(self, metric: str, **attrs: Any) -> Any:
        """The one data point of ``metric`` whose attributes include ``attrs`` (keys with dots
        given with ``__`` for ``.``)."""
        want = {k.replace("__", "."): v for k, v in attrs.items()}
        found = [p for p in self.points(metric) if all(p.attributes.get(k) == v for k, v in want.items())]
        assert len(found) == 1, f"{metric} {want}: {[dict(p.attributes) for p in self.points(metric)]}"
        return found[0]

    def close(self) -> None:
        self.tp.shutdown()
        self.mp.shutdown()


@pytest.fixture
def signals() -> Iterator[Signals]:
    s = Signals()
    yield s
    telemetry.instrument()
    s.close()


def make_signals(settings: env.Settings | None = None) -> Signals:
    return Signals(settings)
