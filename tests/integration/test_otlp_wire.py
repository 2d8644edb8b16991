"""
Over the wire: a process configured only through ``OTEL_*`` variables sends graphai's traces,
metrics and logs to a real OTLP receiver (``otlp_sink.py``), over gRPC and over HTTP/protobuf.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from graphai.telemetry import names as N
from tests._tools import poll
from tests.integration.otlp_fixtures import OtlpSink

pytestmark = pytest.mark.integration

# The application: nothing but configure() and the documented structlog chain; every setting
# comes from the environment.
APP = r"""
import asyncio, sys
from graphai import Callback, Graph, node
import graphai.telemetry
from graphai.telemetry.logging import configure_logging

@node(start=True, stream=True, kind="llm", model="fake-model")
async def llm(query: str, callback):
    for t in ["a", "b", "c"]:
        await callback.acall(t)
        await asyncio.sleep(0.01)
    return {"answer": "abc"}

@node(end=True)
async def done(answer: str):
    return {"answer": answer}

async def main():
    graph = Graph(name="wire")
    graph.add_node(llm).add_node(done).add_edge(llm, done).compile()
    callback = Callback()

    async def drain():
        return [t async for t in callback.aiter()]

    result, tokens = await asyncio.gather(graph.execute({"query": "q"}, callback=callback), drain())
    assert result["answer"] == "abc", result
    assert [t for t in tokens if not t.startswith("<graphai:")] == ["a", "b", "c"], tokens

handle = graphai.telemetry.configure()
configure_logging(json=True, extra_processors=[handle.log_processor], file=sys.stdout)
asyncio.run(main())
ok = handle.shutdown(timeout_s=15)
print("SHUTDOWN_OK" if ok else "SHUTDOWN_TIMEOUT", flush=True)
"""

RESOURCE_KEY = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
SCOPE_KEY = {"traces": "scopeSpans", "metrics": "scopeMetrics", "logs": "scopeLogs"}
ITEM_KEY = {"traces": "spans", "metrics": "metrics", "logs": "logRecords"}


def _attr(attrs: list[dict[str, Any]], key: str) -> Any:
    for a in attrs:
        if a["key"] == key:
            return next(iter(a["value"].values()), None)
    return None


def _items(sink: OtlpSink, kind: str, service: str) -> Iterator[dict[str, Any]]:
    """Spans / metrics / log records received from the process whose service.name is ``service``."""
    for request in sink.get(kind):
        for rs in request.get(RESOURCE_KEY[kind], []):
            if _attr(rs.get("resource", {}).get("attributes", []), "service.name") != service:
                continue
            for scope in rs.get(SCOPE_KEY[kind], []):
                yield from scope.get(ITEM_KEY[kind], [])


def _clean_env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    environ.update(extra)
    return environ


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"])
def wire_run(request: pytest.FixtureRequest, otlp_sink: OtlpSink) -> tuple[str, str]:
    """Run APP once against the sink; returns (service name, its output)."""
    protocol = request.param
    service = f"wire-{protocol.split('/')[0]}-{uuid.uuid4().hex[:8]}"
    environ = _clean_env(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink.endpoint(protocol),
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_METRIC_EXPORT_INTERVAL="200",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        # the /metrics endpoint on a free port, so parallel runs never clash on 9464
        GRAPHAI_PROMETHEUS_ADDR="127.0.0.1:0",
    )
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", APP],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "SHUTDOWN_OK" in proc.stdout, output
    for failure in ("Failed to export", "Traceback", "Transient error"):
        assert failure not in output, output
    return service, output


class TestOtlpWire:
    """configure() driven by OTEL_* variables delivers all three signals to a real receiver."""

    def test_traces_arrive_with_run_and_node_spans(
        self, wire_run: tuple[str, str], otlp_sink: OtlpSink
    ) -> None:
        service, _ = wire_run
        want = {f"{N.RUN_SPAN_PREFIX} wire", f"{N.LLM_SPAN_PREFIX} fake-model", "done"}

        def spans() -> dict[str, dict[str, Any]] | None:
            got = {s["name"]: s for s in _items(otlp_sink, "traces", service)}
            return got if want <= got.keys() else None

        got = poll(spans, timeout=15, what=f"spans {sorted(want)} from {service}")
        run = got[f"{N.RUN_SPAN_PREFIX} wire"]
        for name in want - {run["name"]}:
            assert got[name]["traceId"] == run["traceId"], name
            assert got[name]["parentSpanId"] == run["spanId"], name
        llm = got[f"{N.LLM_SPAN_PREFIX} fake-model"]
        assert _attr(llm["attributes"], N.NODE_NAME) == "llm"
        assert _attr(llm["attributes"], N.GRAPH_NAME) == "wire"
        assert _attr(run["attributes"], N.GRAPH_NAME) == "wire"

    def test_metrics_arrive_with_contract_names_and_buckets(
        self, wire_run: tuple[str, str], otlp_sink: OtlpSink
    ) -> None:
        service, _ = wire_run
        want = {N.NODE_DURATION, N.NODE_TOKENS, N.GRAPH_DURATION, N.NODE_TTFT}

        def metrics() -> dict[str, list[dict[str, Any]]] | None:
            got: dict[str, list[dict[str, Any]]] = {}
            for m in _items(otlp_sink, "metrics", service):
                got.setdefault(m["name"], []).append(m)
            return got if want <= got.keys() else None

        got = poll(metrics, timeout=15, what=f"metrics {sorted(want)} from {service}")
        tokens = [
            int(p.get("asInt", p.get("asDouble", 0)))
            for m in got[N.NODE_TOKENS]
            for p in m["sum"]["dataPoints"]
            if _attr(p["attributes"], N.NODE_NAME) == "llm"
        ]
        assert max(tokens) == 3, tokens  # cumulative: every export reports the total
        duration = got[N.NODE_DURATION][-1]["histogram"]["dataPoints"][0]
        assert [float(b) for b in duration["explicitBounds"]] == list(N.DURATION_BUCKETS)

    def test_logs_arrive_with_run_end_event(
        self, wire_run: tuple[str, str], otlp_sink: OtlpSink
    ) -> None:
        service, _ = wire_run

        def run_end() -> list[dict[str, Any]]:
            return [
                r
                for r in _items(otlp_sink, "logs", service)
                if r.get("body", {}).get("stringValue") == "graph.run.end"
            ]

        (record,) = poll(run_end, timeout=15, what=f"graph.run.end log from {service}")
        assert record["severityText"] == "INFO"
        assert record["severityNumber"] == "SEVERITY_NUMBER_INFO"
        assert _attr(record["attributes"], N.GRAPH_NAME) == "wire"
        assert _attr(record["attributes"], "outcome") == "ok"
        assert _attr(record["attributes"], "tokens") == "3"  # int64 is a string in OTLP/JSON


@node(start=True, stream=True, kind="llm", model="fake-model")
async def llm(query: str, callback: Any) -> dict[str, Any]:
    for t in ["a", "b", "c"]:
        await callback.acall(t)
    return {"answer": "abc"}


@node(end=True)
async def done(answer: str) -> dict[str, Any]:
    return {"answer": answer}


class TestOtlpArguments:
    """Explicit configure() arguments (base endpoint, protocol) override the environment."""

    @pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
    async def test_explicit_endpoint_and_protocol(
        self, protocol: str, otlp_sink: OtlpSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for k in list(os.environ):
            if k.startswith(("OTEL_", "GRAPHAI_")):
                monkeypatch.delenv(k)
        # a wrong environment, which the arguments must win over
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        monkeypatch.setenv(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc" if protocol != "grpc" else "http/protobuf"
        )
        service = f"args-{protocol.split('/')[0]}-{uuid.uuid4().hex[:8]}"
        handle = telemetry.configure(
            service_name=service,
            otlp_endpoint=otlp_sink.endpoint(protocol),
            otlp_protocol=protocol,
            prometheus_addr=False,
            set_global=False,
        )
        try:
            graph = Graph(name="args")
            graph.add_node(llm).add_node(done).add_edge(llm, done).compile()
            callback = Callback()

            async def drain() -> list[Any]:
                return [t async for t in callback.aiter()]

            await asyncio.wait_for(
                asyncio.gather(graph.execute({"query": "q"}, callback=callback), drain()), 10
            )
        finally:
            assert await asyncio.to_thread(handle.shutdown, 10.0)
        spans = {s["name"] for s in _items(otlp_sink, "traces", service)}
        assert f"{N.RUN_SPAN_PREFIX} args" in spans, spans
        metrics = {m["name"] for m in _items(otlp_sink, "metrics", service)}
        assert N.NODE_DURATION in metrics, metrics
