"""One guard at the seam (hardening cases 12 and 17): a failure inside telemetry (a span
processor, a structlog processor, content capture, a metric record) never changes a run's
result or token stream, every span still ends and the gauges return to 0; each failure is
counted in ``graphai.telemetry.internal_errors{where}`` and logged at most once a minute per
``where``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import ExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import graphai.telemetry as telemetry
from graphai.telemetry import _guard, env
from graphai.telemetry import names as N
from tests._otel import Signals
from tests.telemetry._support import (
    EXPECTED_TOKENS,
    _active,
    _streaming_graph,
    execute_and_drain,
    linear_graph,
    run_with_consumer,
)


@pytest.fixture
def fresh_errors() -> Iterator[None]:
    _guard._logged.clear()
    yield
    _guard._logged.clear()


def _errors(sig: Signals) -> dict[str, int]:
    return {
        str(p.attributes[N.INTERNAL_ERROR_WHERE]): int(p.value)
        for p in sig.points(N.INTERNAL_ERRORS)
    }


class TestBrokenSdk:
    """A span processor that raises changes neither the result nor the token stream."""

    async def test_raising_processor(self, caplog) -> None:
        import structlog
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        import graphai.telemetry as t

        class Exploding(SpanProcessor):
            def on_start(self, span, parent_context=None) -> None:  # type: ignore[no-untyped-def]
                raise RuntimeError("processor on_start")

            def on_end(self, span) -> None:  # type: ignore[no-untyped-def]
                raise RuntimeError("processor on_end")

        from graphai.telemetry import _guard

        structlog.reset_defaults()
        _guard._logged.clear()  # logged at most once a minute per place
        tp = TracerProvider()
        tp.add_span_processor(Exploding())
        t.instrument(tracer_provider=tp)
        try:
            with caplog.at_level("WARNING", logger="graphai"):
                res, toks = await execute_and_drain(linear_graph(), {"q": "hi"})
        finally:
            t.instrument()
            tp.shutdown()
        assert res == {"q": "HI", "answer": "abbccc", "len": 6}
        assert toks == [
            "<graphai:llm:start:>",
            "<graphai:llm:>",
            "a",
            "bb",
            "ccc",
            "<graphai:llm:end:>",
            "<graphai:END:>",
        ]
        assert t.active_streams() == []
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        # the run span could not start: the run goes on without telemetry, reported once
        assert msgs == ["telemetry.internal_error where='run.start' error_type='RuntimeError'"]


class TestRaisingLogProcessor:
    """A structlog processor that raises on every line changes nothing but the lines."""

    async def test_result_stream_spans_gauges(self, fresh_errors: None) -> None:
        def explode(_logger: Any, _name: str, event_dict: Any) -> Any:
            raise RuntimeError("processor")

        sig = Signals()
        structlog.configure(processors=[explode, structlog.processors.JSONRenderer()])
        try:
            result, toks = await run_with_consumer(_streaming_graph(), {"q": "x"})
        finally:
            structlog.reset_defaults()
            telemetry.instrument()
        try:
            assert result == {"q": "x", "said": 3, "total": 3}
            assert toks == EXPECTED_TOKENS
            names = sorted(s.name for s in sig.spans())
            assert names == ["done", "invoke_workflow speaker", "speak"]
            assert all(s.end_time is not None for s in sig.spans())
            assert sig.span("speak").attributes[N.NODE_OUTPUT_TOKENS] == 3
            assert _active(sig, "speak") == 0 and _active(sig, "done") == 0
            # start lines (run, 2 nodes) and end lines (2 nodes, run) all failed, all counted
            assert _errors(sig) == {"log": 3, "node.log": 2, "run.log": 1}
        finally:
            sig.close()


class Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class TestUnrepresentableInputWithCapture:
    """With content capture on, an input whose ``repr()`` raises is captured as
    ``<unrepresentable TYPE>`` and counted (``where="capture"``); the run is unchanged."""

    async def test_result_stream_spans(self, fresh_errors: None) -> None:
        sig = Signals(env.Settings(capture_content=True))
        try:
            bad = Unrepresentable()
            result, toks = await run_with_consumer(_streaming_graph(), {"q": bad})
            assert result["total"] == 3 and result["q"] is bad
            assert toks == EXPECTED_TOKENS
            assert all(s.end_time is not None for s in sig.spans()) and len(sig.spans()) == 3
            run_span = sig.span("invoke_workflow speaker")
            assert run_span.attributes[N.GEN_AI_INPUT_MESSAGES] == "<unrepresentable dict>"
            assert run_span.attributes[N.RUN_OUTCOME] == N.OUTCOME_OK
            assert sig.span("speak").attributes[N.NODE_INPUT] == "<unrepresentable dict>"
            assert _active(sig, "speak") == 0
            # the run's input and result, and the inputs of speak and done (both hold q)
            assert _errors(sig) == {"capture": 4}
        finally:
            telemetry.instrument()
            sig.close()


class Exploding:
    """A span processor that raises on start and end."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("on_start")

    def on_end(self, span: Any) -> None:
        raise RuntimeError("on_end")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class TestOneGuardCounted:
    """A failure is counted every time under its ``where`` and logged once a minute; the next
    line reports how many were suppressed."""

    async def test_counted_every_time_logged_once_a_minute(
        self, fresh_errors: None, caplog: pytest.LogCaptureFixture
    ) -> None:
        tp = TracerProvider()
        tp.add_span_processor(Exploding())  # type: ignore[arg-type]
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        telemetry.instrument(tracer_provider=tp, meter_provider=mp)
        try:
            with caplog.at_level(logging.WARNING, logger="graphai"):
                for _ in range(3):
                    result, toks = await run_with_consumer(_streaming_graph(), {"q": 1})
                    assert toks == EXPECTED_TOKENS and result["total"] == 3
        finally:
            telemetry.instrument()
            tp.shutdown()
        data = reader.get_metrics_data()
        assert data is not None
        counts = {
            p.attributes["where"]: p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == N.INTERNAL_ERRORS
            for p in m.data.data_points
        }
        assert counts == {"run.start": 3}
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        assert msgs == ["telemetry.internal_error where='run.start' error_type='RuntimeError'"]
        mp.shutdown()

    async def test_next_line_reports_the_suppressed(
        self, fresh_errors: None, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="graphai"):
            for _ in range(4):
                _guard.internal_error("node.end", ValueError("x"))
            monkeypatch.setattr(_guard, "LOG_EVERY_S", 0.0)
            _guard.internal_error("node.end", ValueError("x"))
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        assert msgs == [
            "telemetry.internal_error where='node.end' error_type='ValueError'",
            "telemetry.internal_error where='node.end' error_type='ValueError' suppressed=3",
        ]


class NodeSpansExplode(SpanProcessor):
    """A span processor that raises on the start or the end of node spans only."""

    def __init__(self, on: str) -> None:
        self.on = on

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.on == "start" and not span.name.startswith("invoke_workflow"):
            raise RuntimeError("on_start")

    def on_end(self, span: Any) -> None:
        if self.on == "end" and not span.name.startswith("invoke_workflow"):
            raise RuntimeError("on_end")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RaisingExemplarFilter(ExemplarFilter):
    """Every record of a float (the duration histograms) raises inside the SDK; integer
    counts (the internal-errors counter itself, the gauges) pass."""

    def should_sample(self, value: Any, time_unix_nano: int, attributes: Any, context: Any) -> bool:
        if isinstance(value, float):
            raise RuntimeError("should_sample")
        return False


class TestEveryNodePhaseGuarded:
    """The per-node phases carry the seam's guard inline (no wrapper frame on the hot path):
    each failing phase is counted under its own ``where``, the run's result and token stream
    are unchanged, and the next phases still run (the active gauge returns to 0)."""

    async def _run(self, tp: TracerProvider | None, mp: MeterProvider) -> None:
        telemetry.instrument(tracer_provider=tp, meter_provider=mp)
        try:
            for _ in range(2):
                result, toks = await run_with_consumer(_streaming_graph(), {"q": 1})
                assert toks == EXPECTED_TOKENS and result["total"] == 3
        finally:
            telemetry.instrument()
            if tp is not None:
                tp.shutdown()

    @staticmethod
    def _counts(reader: InMemoryMetricReader) -> dict[str, int]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            str(p.attributes["where"]): int(p.value)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == N.INTERNAL_ERRORS
            for p in m.data.data_points
        }

    @staticmethod
    def _active(reader: InMemoryMetricReader) -> set[float]:
        data = reader.get_metrics_data()
        assert data is not None
        return {
            float(p.value)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == N.NODE_ACTIVE
            for p in m.data.data_points
        }

    @pytest.mark.parametrize(("on", "where"), [("start", "node.start"), ("end", "node.end")])
    async def test_node_span_phase(self, fresh_errors: None, on: str, where: str) -> None:
        tp = TracerProvider()
        tp.add_span_processor(NodeSpansExplode(on))  # type: ignore[arg-type]
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        await self._run(tp, mp)
        assert self._counts(reader) == {where: 4}  # 2 runs x 2 nodes
        # after a failed node start the node is not observed at all; after a failed span end
        # the node's metrics were still recorded and it left the live set
        assert self._active(reader) <= {0.0}
        durations = [m for m in _metric_names(reader) if m == N.NODE_DURATION]
        assert durations == ([] if on == "start" else [N.NODE_DURATION])
        mp.shutdown()

    async def test_node_metrics_phase(self, fresh_errors: None) -> None:
        tp = TracerProvider()
        exporter = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader], exemplar_filter=RaisingExemplarFilter())
        await self._run(tp, mp)
        # node.metrics fails at its first record (the duration), once per node run; run.metrics
        # once per run; the spans are complete either way
        assert self._counts(reader) == {"node.metrics": 4, "run.metrics": 2}
        names = sorted(s.name for s in exporter.get_finished_spans())
        assert names == ["done", "done", "invoke_workflow speaker", "invoke_workflow speaker", "speak", "speak"]
        outcomes = {
            (s.attributes or {}).get(N.NODE_OUTCOME)
            for s in exporter.get_finished_spans()
            if s.name in ("done", "speak")
        }
        assert outcomes == {"ok"}
        mp.shutdown()


def _metric_names(reader: InMemoryMetricReader) -> list[str]:
    data = reader.get_metrics_data()
    assert data is not None
    return [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
