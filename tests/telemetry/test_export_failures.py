"""telemetry.export_failed: exporter failures are reported, rate-limited, and never raise."""

from __future__ import annotations

import structlog
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from graphai.telemetry._watch import FailureReport, WatchedSpanExporter
from tests._tools import free_port


class Failing(SpanExporter):
    def __init__(self, raise_: bool) -> None:
        self.raise_ = raise_
        self.calls = 0

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.raise_:
            raise ConnectionError("down")
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


class TestWatchedExporters:
    """A failure is reported once per interval with the count since the last report."""

    def test_failure_results_and_exceptions(self, caplog) -> None:
        structlog.reset_defaults()
        inner = Failing(raise_=True)
        w = WatchedSpanExporter(inner, FailureReport("traces", every_s=3600))
        with caplog.at_level("WARNING", logger="graphai"):
            assert w.export([]) is SpanExportResult.FAILURE
            assert w.export([]) is SpanExportResult.FAILURE
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        assert msgs == [
            "telemetry.export_failed signal='traces' exporter='Failing' failures=1 error_type='ConnectionError'"
        ]
        assert w.report.failures == 2 and inner.calls == 2

    def test_every_failure_is_counted_per_signal(self, caplog) -> None:
        # the log line is rate-limited; the counter is not (it is what an SRE alerts on)
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        import graphai.telemetry as t
        from graphai.telemetry import names as N

        structlog.reset_defaults()
        reader = InMemoryMetricReader()
        mp = MeterProvider(metric_readers=[reader])
        t.instrument(meter_provider=mp)
        try:
            w = WatchedSpanExporter(Failing(raise_=True), FailureReport("traces", every_s=3600))
            with caplog.at_level("WARNING", logger="graphai"):
                for _ in range(3):
                    w.export([])
            data = reader.get_metrics_data()
        finally:
            t.instrument()
            mp.shutdown()
        assert data is not None
        points = {
            tuple(sorted((p.attributes or {}).items())): p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == N.EXPORT_FAILURES
            for p in m.data.data_points
        }
        assert points == {(("signal", "traces"),): 3}
        assert len([r for r in caplog.records if r.name == "graphai"]) == 1

    def test_reports_again_after_the_interval(self, caplog) -> None:
        structlog.reset_defaults()
        w = WatchedSpanExporter(Failing(raise_=False), FailureReport("traces", every_s=0))
        with caplog.at_level("WARNING", logger="graphai"):
            for _ in range(3):
                w.export([])
        assert [r.getMessage() for r in caplog.records if r.name == "graphai"] == [
            "telemetry.export_failed signal='traces' exporter='Failing' failures=1"
        ] * 3

    async def test_configure_reports_a_down_endpoint(self, caplog, monkeypatch) -> None:
        import graphai.telemetry as t
        from graphai import Graph, node

        structlog.reset_defaults()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
        port = free_port()  # nothing listens here
        h = t.configure(
            otlp_endpoint=f"http://127.0.0.1:{port}",
            otlp_protocol="http/protobuf",
            prometheus_addr=False,
            set_global=False,
            metrics=False,
            logs=False,
        )
        try:

            @node(start=True, end=True)
            async def one() -> dict:
                return {"ok": 1}

            with caplog.at_level("WARNING", logger="graphai"):
                assert await Graph(name="down").add_node(one()).execute({}) == {"ok": 1}
                h.force_flush(timeout_s=5)
            assert any(
                r.getMessage().startswith("telemetry.export_failed signal='traces' exporter='OTLPSpanExporter'")
                for r in caplog.records
            ), [r.getMessage() for r in caplog.records]
        finally:
            h.shutdown(3.0)
