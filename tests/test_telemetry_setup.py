"""
graphai.telemetry.configure(): providers, the handle's lifecycle, the /metrics endpoint, the
global-provider rules and the structlog -> OTel logs processor. No OTLP receiver here (see
tests/integration/test_otlp_wire.py); tests that touch process globals run in a subprocess,
because OpenTelemetry lets a global provider be set only once per process.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import graphai.telemetry as telemetry
from graphai import Callback, Graph, _hooks, node
from graphai.telemetry import env
from graphai.telemetry import names as N
from graphai.telemetry.setup import OTelLogsProcessor, TelemetryHandle, configure
from tests._tools import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* / GRAPHAI_* from the caller's shell; graphai's instrumentation restored after."""
    for k in list(os.environ):
        if k.startswith(("OTEL_", "GRAPHAI_")):
            monkeypatch.delenv(k)
    before = _hooks.get_instrumentation()
    yield
    _hooks.set_instrumentation(before)


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    """Collects handles and shuts them all down (bounded) even when a test fails."""
    made: list[TelemetryHandle] = []
    yield made
    for h in made:
        h.shutdown(timeout_s=2)


def local(made: list[TelemetryHandle], **kw: Any) -> TelemetryHandle:
    kw.setdefault("set_global", False)
    kw.setdefault("prometheus_addr", False)
    h = configure(**kw)
    made.append(h)
    return h


@node(start=True, stream=True, kind="llm", model="fake-model")
async def llm(query: str, callback: Any) -> dict[str, Any]:
    for t in ["a", "b", "c"]:
        await callback.acall(t)
        await asyncio.sleep(0.001)
    return {"answer": "abc"}


@node(end=True)
async def done(answer: str) -> dict[str, Any]:
    return {"answer": answer}


async def run_graph() -> dict[str, Any]:
    graph = Graph(name="setup")
    graph.add_node(llm).add_node(done).add_edge(llm, done).compile()
    cb = Callback()

    async def drain() -> list[Any]:
        return [t async for t in cb.aiter()]

    result, _ = await asyncio.wait_for(
        asyncio.gather(graph.execute({"query": "q"}, callback=cb), drain()), timeout=10
    )
    return result


def scrape(addr: str) -> str:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=3) as resp:
        return str(resp.read().decode())


def run_py(*parts: str, timeout: float = 60, **environ: str) -> tuple[int, str, str]:
    """Run the (dedented, joined) code ``parts`` in a fresh interpreter under ``-W error``,
    with a clean OTEL_*/GRAPHAI_* environment plus ``environ``."""
    code = "\n".join(textwrap.dedent(p) for p in parts)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    child_env.update(environ)
    child_env["PYTHONPATH"] = ROOT
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
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


class TestPrometheusEndpoint:
    """The /metrics endpoint: loopback, port 0, one registry per handle, stopped at shutdown."""

    async def test_port_zero_binds_loopback_and_serves_graph_metrics(
        self, handles: list[TelemetryHandle], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(env.GRAPHAI_PROMETHEUS_ADDR, "127.0.0.1:0")
        h = local(handles, prometheus_addr=None, service_name="prom-unit")
        assert h.prometheus_addr is not None
        host, port = h.prometheus_addr.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        await run_graph()
        text = await asyncio.to_thread(scrape, h.prometheus_addr)
        assert "graphai_node_duration_seconds_bucket{" in text
        assert 'service_name="prom-unit"' in text
        assert h.shutdown(timeout_s=3)
        with pytest.raises(urllib.error.URLError):
            scrape(h.prometheus_addr)

    async def test_streams_endpoint_shows_in_flight_node_runs(
        self, handles: list[TelemetryHandle]
    ) -> None:
        import json

        from graphai import Callback, Graph, node

        h = local(handles, prometheus_addr="127.0.0.1:0")
        assert h.prometheus_addr is not None
        url = f"http://{h.prometheus_addr}/streams"
        release = asyncio.Event()
        streaming = asyncio.Event()

        @node(start=True, end=True, stream=True)
        async def live(callback: Any) -> dict[str, Any]:
            await callback.acall("t1")
            await callback.acall("t2")
            streaming.set()
            await release.wait()
            return {}

        def get() -> Any:
            with urllib.request.urlopen(url, timeout=5) as r:
                assert r.headers["Content-Type"] == "application/json"
                return json.loads(r.read())

        cb = Callback()
        run = asyncio.ensure_future(Graph(name="live-view").add_node(live()).execute({}, callback=cb))
        drain = asyncio.ensure_future(asyncio.wait_for(_drain(cb), 5))
        await asyncio.wait_for(streaming.wait(), 5)
        snap = await asyncio.to_thread(get)
        assert [(s["graph"], s["node"], s["tokens"], s["stream"]) for s in snap["streams"]] == [
            ("live-view", "live", 2, True)
        ]
        assert len(snap["streams"][0]["run_id"]) == 32
        release.set()
        await asyncio.wait_for(run, 5)
        await drain
        assert (await asyncio.to_thread(get)) == {"streams": []}

    def test_default_address_is_loopback_9464(self, handles: list[TelemetryHandle]) -> None:
        assert env.DEFAULT_PROMETHEUS_ADDR == "127.0.0.1:9464"
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", 9464))
            except OSError:
                pytest.skip("127.0.0.1:9464 is in use on this machine")
        h = local(handles, prometheus_addr=None)
        assert h.prometheus_addr == "127.0.0.1:9464"

    def test_two_handles_serve_separate_registries(self, handles: list[TelemetryHandle]) -> None:
        a = local(handles, prometheus_addr="127.0.0.1:0", service_name="svc-a")
        b = local(handles, prometheus_addr="127.0.0.1:0", service_name="svc-b")
        assert a.prometheus_addr and b.prometheus_addr and a.prometheus_addr != b.prometheus_addr
        for h, n in ((a, 1), (b, 2)):
            assert h.meter_provider is not None
            h.meter_provider.get_meter("probe").create_counter("probe").add(n)
        text_a, text_b = scrape(a.prometheus_addr), scrape(b.prometheus_addr)
        assert 'service_name="svc-a"' in text_a and "svc-b" not in text_a
        assert 'service_name="svc-b"' in text_b and "svc-a" not in text_b
        assert "probe_total{" in text_a and "} 1.0" in text_a
        assert "probe_total{" in text_b and "} 2.0" in text_b

    def test_address_in_use_warns_and_continues(self, handles: list[TelemetryHandle]) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            with structlog.testing.capture_logs() as logs:
                h = local(handles, prometheus_addr=f"127.0.0.1:{port}")
        assert h.prometheus_addr is None
        assert isinstance(h.meter_provider, MeterProvider)
        assert [e["event"] for e in logs] == ["telemetry.prometheus_failed"]
        assert logs[0]["log_level"] == "warning"


class TestValidation:
    """Invalid settings raise ValueError naming the variable or argument, before anything starts."""

    def test_invalid_prometheus_env_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(env.GRAPHAI_PROMETHEUS_ADDR, "localhost")
        before = _hooks.get_instrumentation()
        with pytest.raises(ValueError, match=env.GRAPHAI_PROMETHEUS_ADDR):
            configure(set_global=False)
        assert _hooks.get_instrumentation() is before

    def test_invalid_prometheus_argument_names_the_argument(self) -> None:
        with pytest.raises(ValueError, match="prometheus_addr"):
            configure(set_global=False, prometheus_addr="127.0.0.1:http")

    def test_unsupported_protocol_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        with pytest.raises(ValueError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
            configure(set_global=False, prometheus_addr=False)
        with pytest.raises(ValueError, match="otlp_protocol"):
            configure(set_global=False, prometheus_addr=False, otlp_protocol="thrift")


class TestSdkDisabled:
    """OTEL_SDK_DISABLED=true: configure() sets up nothing and the handle does nothing."""

    def test_disabled_handle_does_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        monkeypatch.setenv(env.GRAPHAI_PROMETHEUS_ADDR, "127.0.0.1:0")
        before = _hooks.get_instrumentation()
        h = configure()
        assert _hooks.get_instrumentation() is before
        assert h.tracer_provider is None and h.meter_provider is None and h.logger_provider is None
        assert h.prometheus_addr is None
        event = {"event": "x", "level": "info"}
        assert h.log_processor(None, "info", event) is event
        assert h.force_flush() and h.shutdown() and h.shutdown()


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


class TestOTelLogsProcessor:
    """structlog events become OTel log records; the event dict passes through unchanged."""

    @pytest.fixture
    def logs(self) -> Iterator[tuple[LoggerProvider, InMemoryLogRecordExporter]]:
        lp, exporter = LoggerProvider(), InMemoryLogRecordExporter()
        lp.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        yield lp, exporter
        lp.shutdown()

    def test_event_becomes_a_record_in_the_current_span(
        self, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
    ) -> None:
        lp, exporter = logs
        proc = OTelLogsProcessor(lp)
        log = structlog.wrap_logger(
            structlog.ReturnLogger(),
            processors=[
                structlog.processors.add_log_level,
                proc,
                structlog.processors.JSONRenderer(),
            ],
        )
        tp = TracerProvider()
        with tp.get_tracer("t").start_as_current_span("work") as span:
            rendered = log.warning(
                "graph.run.end", tokens=3, ratio=0.5, ok=True, name="g", obj=object(), huge=2**70
            )
        tp.shutdown()
        assert json.loads(rendered)["event"] == "graph.run.end"
        (record,) = [r.log_record for r in exporter.get_finished_logs()]
        assert record.body == "graph.run.end"
        assert record.severity_number == SeverityNumber.WARN
        assert record.severity_text == "WARNING"
        assert dict(record.attributes or {}) == {"tokens": 3, "ratio": 0.5, "ok": True, "name": "g"}
        ctx = span.get_span_context()
        assert (record.trace_id, record.span_id) == (ctx.trace_id, ctx.span_id)

    def test_event_dict_is_returned_unchanged(
        self, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
    ) -> None:
        proc = OTelLogsProcessor(logs[0])
        event = {"event": "e", "level": "info", "nested": {"a": 1}, "n": 1}
        snapshot = dict(event)
        assert proc(None, "info", event) is event
        assert event == snapshot

    def test_exc_info_becomes_exception_attributes(
        self, logs: tuple[LoggerProvider, InMemoryLogRecordExporter]
    ) -> None:
        lp, exporter = logs
        proc = OTelLogsProcessor(lp)
        try:
            raise KeyError("boom")
        except KeyError:
            proc(None, "exception", {"event": "node.error", "exc_info": True})
        (record,) = [r.log_record for r in exporter.get_finished_logs()]
        assert record.severity_number == SeverityNumber.ERROR
        attrs = dict(record.attributes or {})
        assert attrs["exception.type"] == "KeyError"
        assert "boom" in attrs["exception.message"]

    def test_a_failing_provider_never_raises(self) -> None:
        class Broken(_logs.LoggerProvider):
            def get_logger(self, *args: Any, **kwargs: Any) -> _logs.Logger:
                raise RuntimeError("broken")

        proc = OTelLogsProcessor(Broken())
        event = {"event": "e"}
        assert proc(None, "info", event) is event
        assert proc.dropped == 1

    def test_processor_stops_forwarding_after_shutdown(
        self, handles: list[TelemetryHandle]
    ) -> None:
        h = local(handles)
        exporter = InMemoryLogRecordExporter()
        assert isinstance(h.logger_provider, LoggerProvider)
        h.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        h.log_processor(None, "info", {"event": "before"})
        h.shutdown()
        h.log_processor(None, "info", {"event": "after"})
        assert [r.log_record.body for r in exporter.get_finished_logs()] == ["before"]


async def _drain(cb: Any) -> list[Any]:
    return [t async for t in cb.aiter()]
