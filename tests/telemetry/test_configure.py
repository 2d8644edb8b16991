"""``graphai.telemetry.configure()`` and its handle: SDK providers from the ``OTEL_*`` environment
handed to graphai, a shutdown that is bounded (also against an OTLP endpoint that stalls or is
down, and at interpreter exit) and idempotent, and the global-provider rules. No OTLP receiver
here (see tests/integration/test_otlp_wire.py); tests that touch process globals run in a
subprocess, because OpenTelemetry lets a global provider be set only once per process."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import graphai.telemetry as telemetry
from graphai import _hooks
from graphai.telemetry import names as N
from graphai.telemetry.setup import TelemetryHandle, configure
from tests.telemetry import _support
from tests.telemetry._support import local, run_graph, scrape

pytestmark = pytest.mark.usefixtures("clean_env")


def run_py(*parts: str, timeout: float = 60, **environ: str) -> tuple[int, str, str]:
    """``tests.telemetry._support.run_py``, as (returncode, stdout, stderr)."""
    proc = _support.run_py(*parts, timeout=timeout, **environ)
    return proc.returncode, proc.stdout, proc.stderr


GRAPH_SNIPPET = """
import asyncio
from graphai import Callback, Graph, node

@node(start=True, stream=True, kind="llm", model="fake-model")
async def llm(query: str, callback):
    for t in ["a", "b", "c"]:
        await callback.acall(t)
    return {"answer": "abc"}

@node(end=True)
async def done(answer: str):
    return {"answer": answer}

async def _main():
    g = Graph(name="sub")
    g.add_node(llm).add_node(done).add_edge(llm, done).compile()
    cb = Callback()
    async def drain():
        return [t async for t in cb.aiter()]
    res, _ = await asyncio.gather(g.execute({"query": "q"}, callback=cb), drain())
    return res

def run_graph():
    return asyncio.run(_main())
"""


class TestHandleLifecycle:
    """configure() builds SDK providers, hands them to graphai, and the handle shuts them down."""

    async def test_graph_reports_to_the_configured_providers(
        self, handles: list[TelemetryHandle]
    ) -> None:
        h = local(handles, service_name="svc")
        assert isinstance(h.tracer_provider, TracerProvider)
        assert isinstance(h.meter_provider, MeterProvider)
        assert isinstance(h.logger_provider, LoggerProvider)
        assert h.tracer_provider.resource.attributes["service.name"] == "svc"
        exporter = InMemorySpanExporter()
        h.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        assert (await run_graph())["answer"] == "abc"
        names = {s.name for s in exporter.get_finished_spans()}
        assert {f"{N.RUN_SPAN_PREFIX} setup", f"{N.LLM_SPAN_PREFIX} fake-model", "done"} <= names

    def test_service_name_defaults_to_otel_service_name(
        self, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        h = local(handles)
        assert isinstance(h.tracer_provider, TracerProvider)
        attrs = h.tracer_provider.resource.attributes
        assert attrs["service.name"] == "from-env"
        assert attrs["deployment.environment"] == "test"
        h2 = local(handles, service_name="explicit")
        assert isinstance(h2.tracer_provider, TracerProvider)
        assert h2.tracer_provider.resource.attributes["service.name"] == "explicit"

    async def test_sampler_comes_from_otel_traces_sampler(
        self, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
        h = local(handles)
        exporter = InMemorySpanExporter()
        assert isinstance(h.tracer_provider, TracerProvider)
        h.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        assert (await run_graph())["answer"] == "abc"
        assert exporter.get_finished_spans() == ()

    def test_shutdown_is_idempotent_and_stops_the_providers(
        self, handles: list[TelemetryHandle]
    ) -> None:
        h = local(handles)
        exporter = InMemorySpanExporter()
        assert isinstance(h.tracer_provider, TracerProvider)
        h.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        assert h.force_flush(timeout_s=2)
        t0 = time.monotonic()
        assert h.shutdown(timeout_s=2) is True
        assert h.closed
        assert h.shutdown(timeout_s=2) is True
        assert h.force_flush() is True
        assert time.monotonic() - t0 < 2
        h.tracer_provider.get_tracer("t").start_span("after").end()
        assert exporter.get_finished_spans() == ()  # processors are shut down

    def test_shutdown_reinstruments_graphai_with_the_globals(
        self, handles: list[TelemetryHandle]
    ) -> None:
        telemetry.instrument()
        h = local(handles)
        mine = _hooks.get_instrumentation()
        h.shutdown()
        assert telemetry.is_instrumented()
        assert _hooks.get_instrumentation() is not mine

    def test_shutdown_leaves_an_uninstrumented_graphai_uninstrumented(
        self, handles: list[TelemetryHandle]
    ) -> None:
        telemetry.uninstrument()
        h = local(handles)
        assert telemetry.is_instrumented()
        h.shutdown()
        assert not telemetry.is_instrumented()

    def test_context_manager_shuts_down(self) -> None:
        with configure(set_global=False, prometheus_addr="127.0.0.1:0") as h:
            addr = h.prometheus_addr
            assert addr is not None
            assert isinstance(scrape(addr), str)  # 200, even before any metric
        assert h.closed
        with pytest.raises(urllib.error.URLError):
            scrape(addr)

    def test_signals_can_be_switched_off(self, handles: list[TelemetryHandle]) -> None:
        h = local(handles, traces=False, metrics=False, logs=False, prometheus_addr=None)
        assert h.tracer_provider is None and h.meter_provider is None
        assert h.logger_provider is None and h.prometheus_addr is None
        event = {"event": "x"}
        assert h.log_processor(None, "info", event) is event

    def test_passed_providers_are_used_and_left_running(
        self, handles: list[TelemetryHandle]
    ) -> None:
        tp, exporter = TracerProvider(), InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        h = local(handles, tracer_provider=tp)
        assert h.tracer_provider is tp
        h.shutdown()
        tp.get_tracer("t").start_span("still-alive").end()
        assert [s.name for s in exporter.get_finished_spans()] == ["still-alive"]
        tp.shutdown()


class TestGlobals:
    """Global providers: set when asked, never replaced, never touched with set_global=False."""

    def test_set_global_false_leaves_globals_untouched(
        self, handles: list[TelemetryHandle]
    ) -> None:
        before = (
            trace.get_tracer_provider(),
            metrics.get_meter_provider(),
            _logs.get_logger_provider(),
        )
        h = local(handles, prometheus_addr="127.0.0.1:0")
        after = (
            trace.get_tracer_provider(),
            metrics.get_meter_provider(),
            _logs.get_logger_provider(),
        )
        assert all(a is b for a, b in zip(before, after, strict=True))
        assert h.tracer_provider not in after

    def test_set_global_installs_providers_then_a_second_configure_builds_its_own(self) -> None:
        rc, out, err = run_py(
            GRAPH_SNIPPET,
            """
            from opentelemetry import _logs, metrics, trace
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            import graphai.telemetry as telemetry

            h = telemetry.configure(prometheus_addr=False)
            assert trace.get_tracer_provider() is h.tracer_provider
            assert metrics.get_meter_provider() is h.meter_provider
            assert _logs.get_logger_provider() is h.logger_provider
            assert h.shutdown()
            # the globals are now shut down and cannot be replaced: graphai gets fresh ones
            h2 = telemetry.configure(prometheus_addr=False)
            assert h2.tracer_provider is not h.tracer_provider
            exp = InMemorySpanExporter()
            h2.tracer_provider.add_span_processor(SimpleSpanProcessor(exp))
            run_graph()
            assert "invoke_workflow sub" in {s.name for s in exp.get_finished_spans()}
            assert h2.shutdown()
            print("OK")
            """,
        )
        assert rc == 0 and out.strip().endswith("OK"), out + err
        assert "Overriding" not in err, err

    def test_existing_global_providers_are_used_as_they_are(self) -> None:
        rc, out, err = run_py(
            GRAPH_SNIPPET,
            """
            import structlog
            from opentelemetry import metrics, trace
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
            import graphai.telemetry as telemetry

            app_tp, app_exp = TracerProvider(), InMemorySpanExporter()
            app_tp.add_span_processor(SimpleSpanProcessor(app_exp))
            app_reader = InMemoryMetricReader()
            app_mp = MeterProvider(metric_readers=[app_reader])
            trace.set_tracer_provider(app_tp)
            metrics.set_meter_provider(app_mp)

            with structlog.testing.capture_logs() as logs:
                h = telemetry.configure(prometheus_addr="127.0.0.1:0")
            assert h.tracer_provider is app_tp and h.meter_provider is app_mp
            assert h.prometheus_addr is None, h.prometheus_addr
            assert len(app_tp._active_span_processor._span_processors) == 1
            warn = [e for e in logs if e["event"] == "telemetry.providers_exist"]
            assert len(warn) == 1 and warn[0]["signals"] == ["traces", "metrics"], logs
            assert warn[0]["log_level"] == "warning"
            run_graph()
            assert "invoke_workflow sub" in {s.name for s in app_exp.get_finished_spans()}
            assert h.shutdown()
            # the application's providers are still running
            app_tp.get_tracer("app").start_span("after").end()
            assert "after" in {s.name for s in app_exp.get_finished_spans()}
            assert app_reader.get_metrics_data() is not None
            print("OK")
            """,
        )
        assert rc == 0 and out.strip().endswith("OK"), out + err


class TestBoundedShutdown:
    """An OTLP endpoint that stalls or is down never hangs shutdown nor breaks the graph."""

    @pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
    @pytest.mark.parametrize("failure", ["stall", "down"])
    def test_shutdown_returns_within_its_budget(self, protocol: str, failure: str) -> None:
        t0 = time.monotonic()
        rc, out, err = run_py(
            GRAPH_SNIPPET,
            f"PROTOCOL, STALL = {protocol!r}, {failure == 'stall'!r}",
            """
            import json, socket, sys, time
            import graphai.telemetry as telemetry

            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if STALL:
                sock.listen()  # accepts connections, never answers
            else:
                sock.close()  # nothing listens: connection refused
            h = telemetry.configure(
                otlp_endpoint=f"http://127.0.0.1:{port}", otlp_protocol=PROTOCOL,
                prometheus_addr=False, set_global=False,
            )
            result = run_graph()
            t0 = time.monotonic()
            ok = h.shutdown(timeout_s=1.0)
            print(json.dumps({"result": result, "elapsed": time.monotonic() - t0, "ok": ok}))
            sys.stdout.flush()
            sock.close()
            """,
            timeout=60,
            OTEL_EXPORTER_OTLP_TIMEOUT="30",
        )
        total = time.monotonic() - t0
        assert rc == 0, out + err
        report = json.loads(out.strip().splitlines()[-1])
        assert report["result"]["answer"] == "abc"
        assert report["elapsed"] < 2.5, report
        if failure == "stall":
            assert report["ok"] is False, report  # the budget ran out, and we were told
        assert total < 20, f"the process took {total:.1f}s to exit"

    def test_handle_is_shut_down_at_interpreter_exit(self) -> None:
        rc, out, err = run_py(
            """
            import sys
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
            import graphai.telemetry as telemetry

            h = telemetry.configure(set_global=False, prometheus_addr="127.0.0.1:0")
            exporter = ConsoleSpanExporter(out=sys.stdout, formatter=lambda s: f"EXPORTED {s.name}\\n")
            h.tracer_provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60000))
            h.tracer_provider.get_tracer("t").start_span("late").end()
            print("EXITING", flush=True)
            """,
            timeout=30,
        )
        assert rc == 0, out + err
        assert out.splitlines() == ["EXITING", "EXPORTED late"], out + err
