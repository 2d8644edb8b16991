"""
Zero-code instrumentation: the FastAPI SSE example under the real ``opentelemetry-instrument``
(``opentelemetry-distro``'s configurator sets the global SDK providers from ``OTEL_*``, the
``opentelemetry_instrumentor`` entry points run, FastAPI's and graphai's among them).

- OTLP: the HTTP server span, the graph's run span and its node spans arrive at a real OTLP
  receiver (``otlp_sink``) as one trace, run span under the server span, nodes under the run;
  graphai's metrics arrive too. The example's ``create_app`` is served by the ``uvicorn`` CLI,
  so nothing calls ``graphai.telemetry.configure()``.
- The entry point itself: graphai is instrumented before any graph runs, and not with
  ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=graphai``.
- ``OTEL_METRICS_EXPORTER=prometheus``: the app also calls ``configure()`` (as the example's
  ``main()`` does), which adopts the providers, starts no ``/metrics`` of its own and says so
  in ``telemetry.providers_exist``; the distro's ``/metrics`` serves graphai's series.

Every wait is bounded; the servers are ended by their pid.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphai.telemetry import names as N
from tests._tools import IN_CI, free_port, poll
from tests.integration.otlp_fixtures import OtlpSink

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent
GRAPH = "sse-demo"  # examples/fastapi_sse.py build_graph()
READY_S = 30.0
ARRIVE_S = 20.0
STOP_S = 10.0

# what examples/fastapi_sse.py main() does, on a free port and with the providers under test
WITH_CONFIGURE = r"""
import sys
import uvicorn
import graphai.telemetry
sys.path.insert(0, sys.argv[1])
from fastapi_sse import create_app

handle = graphai.telemetry.configure(service_name="graphai-sse-example")
print("PROMETHEUS_ADDR", handle.prometheus_addr, flush=True)
try:
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
finally:
    handle.shutdown()
"""


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():  # a dev install has them: opentelemetry-distro and uvicorn in [dev]
        found = shutil.which(name)
        if found is None:
            msg = f"{name} not installed (pip install -e '.[dev,otel]')"
            if IN_CI:
                pytest.fail(f"{msg}; CI=true requires it")
            pytest.skip(msg)
        return found
    return str(path)


def _env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GRAPHAI_"))}
    environ.pop("PYTHONPATH", None)
    environ.update(
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="false",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="300",
        PYTHONUNBUFFERED="1",
    )
    environ.update(extra)
    return environ


class Server:
    """A subprocess serving HTTP on 127.0.0.1:``port``; output goes to files (never a full pipe)."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, logs: Path) -> None:
        self.port = port
        self.out, self.err = logs / "stdout.txt", logs / "stderr.txt"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=out, stderr=err)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with rc {self.proc.returncode}:\n{self.output()}")
            return httpx.get(f"{self.url}/openapi.json", timeout=1).status_code == 200

        poll(ready, timeout=READY_S, interval=0.1, what=f"{self.url}/openapi.json")

    def stream(self) -> str:
        body = {"query": "How do refunds work?", "delay": 0}
        with httpx.stream("POST", f"{self.url}/stream", json=body, timeout=10) as resp:
            assert resp.status_code == 200, resp.read()
            return resp.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # uvicorn shuts down gracefully (flushing)
            try:
                self.proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_S)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(cmd: list[str], env: dict[str, str], port: int) -> Server:
        logs = tmp_path / f"server{len(started)}"
        logs.mkdir()
        server = Server(cmd, env, port, logs)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


def _attr(attrs: list[dict[str, Any]], key: str) -> Any:
    for a in attrs:
        if a["key"] == key:
            return next(iter(a["value"].values()), None)
    return None


def _items(sink: OtlpSink, kind: str, service: str) -> list[dict[str, Any]]:
    res, scope_key, item = {
        "traces": ("resourceSpans", "scopeSpans", "spans"),
        "metrics": ("resourceMetrics", "scopeMetrics", "metrics"),
    }[kind]
    found = []
    for request in sink.get(kind):
        for rs in request.get(res, []):
            if _attr(rs.get("resource", {}).get("attributes", []), "service.name") != service:
                continue
            for scope in rs.get(scope_key, []):
                found.extend(scope.get(item, []))
    return found


def _providers_exist(output: str) -> dict[str, Any]:
    """The fields of the (stdlib-logged) ``telemetry.providers_exist`` line."""
    lines = [ln for ln in output.splitlines() if ln.startswith(N.LOG_PROVIDERS_EXIST + " ")]
    assert len(lines) == 1, output
    fields = re.findall(r"(\w+)=((?:\[[^\]]*\])|(?:'[^']*'))", lines[0])
    return {k: ast.literal_eval(v) for k, v in fields}


def test_fastapi_sse_under_opentelemetry_instrument_otlp(otlp_sink: OtlpSink, serve: Any) -> None:
    t0 = time.monotonic()
    service = f"auto-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = _env(
        OTEL_SERVICE_NAME=service,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_sink.grpc_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_PYTHON_FASTAPI_EXCLUDED_URLS="openapi.json",  # the readiness probe: no trace
    )
    cmd = [_tool("opentelemetry-instrument"), _tool("uvicorn"), "--app-dir", str(EXAMPLES),
           "fastapi_sse:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning"]  # fmt: skip
    server = serve(cmd, env, port)
    text = server.stream()
    assert "Refunds" in text and "Anything" in text, text

    run_name = f"{N.RUN_SPAN_PREFIX} {GRAPH}"

    def spans() -> list[dict[str, Any]] | None:
        got = _items(otlp_sink, "traces", service)
        names = {s["name"] for s in got}
        want = {run_name, "retrieve", "answer"}
        names |= {_attr(s.get("attributes", []), N.NODE_NAME) for s in got}
        http = [s for s in got if s.get("kind") == "SPAN_KIND_SERVER"]
        return got if want <= names and http else None

    got = poll(spans, timeout=ARRIVE_S, interval=0.2, what="spans at the OTLP receiver")
    by_name = {s["name"]: s for s in got}
    # node spans by graphai.node.name (the llm node's span is named "chat demo-model")
    by_name |= {n: s for s in got if (n := _attr(s.get("attributes", []), N.NODE_NAME))}
    run = by_name[run_name]
    http = [s for s in got if s.get("kind") == "SPAN_KIND_SERVER"]
    assert len(http) == 1, [(s["name"], s.get("kind")) for s in got]
    server_span = http[0]
    assert server_span["name"].startswith("POST"), server_span["name"]
    assert run["traceId"] == server_span["traceId"]
    # the run span sits under the request: directly, or under one of FastAPI's internal spans
    ancestors, parent = [], run.get("parentSpanId")
    ids = {s["spanId"]: s for s in got}
    while parent:
        ancestors.append(parent)
        parent = ids[parent].get("parentSpanId") if parent in ids else None
    assert server_span["spanId"] in ancestors, (run, server_span)
    for node in ("retrieve", "answer"):
        assert by_name[node]["parentSpanId"] == run["spanId"], by_name[node]
        assert by_name[node]["traceId"] == run["traceId"]

    def metric() -> set[str] | None:
        names = {m["name"] for m in _items(otlp_sink, "metrics", service)}
        return names if {N.NODE_DURATION, N.GRAPH_DURATION} <= names else None

    names = poll(metric, timeout=ARRIVE_S, interval=0.2, what="graphai metrics at the receiver")
    assert N.NODE_TTFT in names, names
    # no configure() here, so no providers_exist line; graphai ran on the distro's providers
    assert N.LOG_PROVIDERS_EXIST not in server.output()
    print(f"otlp: {time.monotonic() - t0:.1f}s")


ENTRY_POINT_CHECK = r"""
import sys
import graphai.telemetry._state as state
from opentelemetry import trace
print("INSTALLED", state.INSTALLED[0] is not None)
print("LOADED", "graphai.telemetry.instrumentor" in sys.modules)
print("PROVIDER", type(trace.get_tracer_provider()).__name__)
"""


@pytest.mark.parametrize("disabled", [False, True])
def test_entry_point_instruments_graphai_before_any_run(disabled: bool) -> None:
    env = _env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    if disabled:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "graphai"
    proc = subprocess.run(
        [_tool("opentelemetry-instrument"), sys.executable, "-c", ENTRY_POINT_CHECK],
        env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert f"INSTALLED {not disabled}" in lines, proc.stdout + proc.stderr
    assert f"LOADED {not disabled}" in lines, proc.stdout + proc.stderr
    assert "PROVIDER TracerProvider" in lines, proc.stdout


def test_prometheus_exporter_under_opentelemetry_instrument(serve: Any, tmp_path: Path) -> None:
    t0 = time.monotonic()
    port, prom_port, graphai_port = free_port(), free_port(), free_port()
    script = tmp_path / "app.py"
    script.write_text(WITH_CONFIGURE)
    env = _env(
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(prom_port),
        GRAPHAI_PROMETHEUS_ADDR=f"127.0.0.1:{graphai_port}",  # what configure() would start
    )
    cmd = [_tool("opentelemetry-instrument"), sys.executable, str(script), str(EXAMPLES), str(port)]
    server = serve(cmd, env, port)
    text = server.stream()
    assert "Refunds" in text, text

    assert "PROMETHEUS_ADDR None" in server.output()  # configure() started no /metrics
    fields = _providers_exist(server.output())
    assert "metrics" in fields["signals"], fields
    assert fields["not_started"] == [N.NOT_STARTED_PROMETHEUS], fields
    assert "OTEL_METRICS_EXPORTER=prometheus" in fields["hint"], fields
    assert "PrometheusMetricReader" in fields["hint"], fields
    with pytest.raises(OSError):  # nothing on graphai's own address
        urllib.request.urlopen(f"http://127.0.0.1:{graphai_port}/metrics", timeout=2)

    def scrape() -> str | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/metrics", timeout=2) as r:
            body = r.read().decode()
        done = 'graphai_node_name="answer"' in body
        return body if done and "graphai_node_duration_seconds_count" in body else None

    body = poll(
        scrape, timeout=ARRIVE_S, interval=0.2, what="graphai series on the distro's /metrics"
    )
    assert re.search(r"^graphai_graph_duration_seconds_count\{[^}]*\} 1\.0$", body, re.M), body
    print(f"prometheus: {time.monotonic() - t0:.1f}s")
