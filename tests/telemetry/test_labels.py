"""The label guard (hardening cases 13 and 17): node names beyond the label limit become
``_OTHER`` and each replaced value is counted once in ``graphai.telemetry.label_overflow``; a
name that cannot be encoded as UTF-8 is escaped, so every scrape and export keeps working."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from graphai.telemetry import env
from graphai.telemetry import names as N
from tests._otel import Signals, make_signals
from tests._stream import TIMEOUT, drain


class TestCardinality:
    """Names beyond the limit become _OTHER and are counted in label_overflow."""

    async def test_overflow(self) -> None:
        s = make_signals(env.Settings(label_limit=3))
        try:
            for i in range(6):

                @node(start=True, end=True, name=f"n{i}")
                async def f() -> dict:
                    return {}

                await Graph(name="card").add_node(f()).execute({})
            names = sorted(p.attributes["graphai.node.name"] for p in s.points(N.NODE_DURATION))
            assert names == ["_OTHER", "n0", "n1", "n2"]
            other = s.point(N.NODE_DURATION, graphai__node__name="_OTHER")
            assert other.count == 3
            ov = s.point(N.LABEL_OVERFLOW)
            assert dict(ov.attributes) == {"attribute": "graphai.node.name"} and ov.value == 3
            # spans keep the real names (spans are not metrics)
            assert sorted(x.name for x in s.spans() if x.name.startswith("n")) == [f"n{i}" for i in range(6)]
        finally:
            s.close()


class TestLabelOverflowCountsOnce:
    """Each replaced value counts once, also past the rejected-values memory bound."""

    async def test_beyond_the_memory_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        sig = Signals(env.Settings(label_limit=2))
        try:
            sig.instr.instruments()  # type: ignore[union-attr]
            guard = sig.instr.guard  # type: ignore[union-attr]
            total = 10_050  # past the old 10k bound, which then counted every use
            for _ in range(2):
                for i in range(total):
                    guard(N.NODE_NAME, f"n{i}")
            (pt,) = sig.points(N.LABEL_OVERFLOW)
            assert pt.value == total - 2
        finally:
            telemetry.instrument()
            sig.close()


class TestUnencodableNames:
    """A node name with a lone surrogate is escaped in metric labels, span names and
    attributes, and every later scrape works; the stream keeps the name as it is."""

    async def test_scrapes_and_spans_survive_a_surrogate_node_name(self) -> None:
        registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=registry)
        mp = MeterProvider(metric_readers=[reader])
        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        telemetry.instrument(tracer_provider=tp, meter_provider=mp)
        name = b"bad\xffname".decode("utf-8", "surrogateescape")  # 'bad\udcffname'
        try:

            @node(start=True, end=True, name=name, stream=True)
            async def odd(callback: Any) -> dict[str, Any]:
                await callback.acall("t")
                return {}

            cb = Callback()
            consumer = asyncio.ensure_future(drain(cb))
            await asyncio.wait_for(Graph(name="g").add_node(odd).execute({}, callback=cb), TIMEOUT)
            items = await asyncio.wait_for(consumer, TIMEOUT)
            assert items[0] == f"<graphai:{name}:start:>"  # the stream keeps the name as is
            text = generate_latest(registry).decode()  # raised UnicodeEncodeError before
            assert 'graphai_node_name="bad\\\\udcffname"' in text
            (span,) = exporter.get_finished_spans()[:1]
            assert span.name == "bad\\udcffname"
            assert span.attributes[N.NODE_NAME] == "bad\\udcffname"
            generate_latest(registry)  # and every later scrape
        finally:
            telemetry.instrument()
            tp.shutdown()
            mp.shutdown()
