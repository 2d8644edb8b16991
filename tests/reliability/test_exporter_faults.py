"""
Telemetry never breaks the graph (``docs/reliability.md``), with real exporters.

An OTLP endpoint that is down (a closed loopback port), slow (a server that accepts and never
answers) or failing (HTTP 500 / gRPC UNAVAILABLE), over gRPC and HTTP, behind a real
``BatchSpanProcessor(OTLPSpanExporter(timeout=1))`` and ``PeriodicExportingMetricReader``
passed in with ``instrument()``: over ``GRAPHAI_FAULT_RUNS`` runs (default 100) the results and
token streams are identical to a run without telemetry, nothing escapes, RSS stays bounded and
the providers shut down within a bound. Plus a Prometheus ``/metrics`` scrape loop in a thread
while runs execute.

The exporters log their failures through ``logging`` (expected); a *warning* would fail the
test (``filterwarnings = error``), so would an exception in an exporter thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from tests._tools import free_port
from tests.reliability._support import MB, bounded, rss_bytes, size_knob

FAULT_RUNS = size_knob("GRAPHAI_FAULT_RUNS", 100)
BATCH = 10  # runs in flight at once
EXPORT_TIMEOUT_S = 1.0
# Shutdown budget: the exporter's own timeout, one more in-flight export attempt it may be
# blocked in when shutdown starts, and slack for a loaded 2-core CI machine.
SHUTDOWN_BOUND_S = 2 * EXPORT_TIMEOUT_S + 2.0
RSS_LIMIT_MB = 50


# -- fault servers -------------------------------------------------------------------------------
class StallServer:
    """Accepts TCP connections, reads and discards what arrives, never answers (gRPC or HTTP)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="stall-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                pass
            else:
                conn.setblocking(False)
                self._conns.append(conn)
            for c in list(self._conns):
                try:
                    if c.recv(65536) == b"":
                        self._conns.remove(c)
                        c.close()
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    self._conns.remove(c)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self._conns:
            c.close()
        self.sock.close()


class _Http500Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"collector on fire"
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Http500Server:
    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Http500Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


class _Unavailable(grpc.GenericRpcHandler):
    """Every RPC (trace and metric Export) fails with UNAVAILABLE."""

    def service(self, handler_call_details: Any) -> Any:
        def fail(request: bytes, context: Any) -> bytes:
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector unavailable")
            return b""  # not reached: abort raises

        return grpc.unary_unary_rpc_method_handler(fail)


class GrpcUnavailableServer:
    def __init__(self) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((_Unavailable(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def close(self) -> None:
        self.server.stop(grace=None).wait(5)


class DownEndpoint:
    """A loopback port nothing listens on (connection refused)."""

    def __init__(self) -> None:
        self.port = free_port()

    def close(self) -> None:
        pass


FAULTS = {"down": DownEndpoint, "slow": StallServer, "failing": None}


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """``(protocol, port)`` of a faulty OTLP endpoint; the param is ``(protocol, fault)``."""
    protocol, fault = request.param
    if fault == "failing":
        server: Any = GrpcUnavailableServer() if protocol == "grpc" else Http500Server()
    else:
        server = FAULTS[fault]()
    yield protocol, server.port
    server.close()


def _providers(protocol: str, port: int) -> tuple[TracerProvider, MeterProvider]:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        span_exp: Any = OTLPSpanExporter(
            endpoint=f"127.0.0.1:{port}", insecure=True, timeout=EXPORT_TIMEOUT_S
        )
        metric_exp: Any = OTLPMetricExporter(
            endpoint=f"127.0.0.1:{port}", insecure=True, timeout=EXPORT_TIMEOUT_S
        )
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        base = f"http://127.0.0.1:{port}"
        span_exp = HttpSpanExporter(endpoint=f"{base}/v1/traces", timeout=EXPORT_TIMEOUT_S)
        metric_exp = HttpMetricExporter(endpoint=f"{base}/v1/metrics", timeout=EXPORT_TIMEOUT_S)
    tp = TracerProvider()
    tp.add_span_processor(
        BatchSpanProcessor(
            span_exp,
            schedule_delay_millis=50,
            # one batch holds the whole queue: shutdown drains it with a single export
            max_queue_size=256,
            max_export_batch_size=256,
            export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000),
        )
    )
    reader = PeriodicExportingMetricReader(
        metric_exp,
        export_interval_millis=200,
        export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000),
    )
    return tp, MeterProvider(metric_readers=[reader])


# -- the workload --------------------------------------------------------------------------------
def _graph() -> Graph:
    @node(start=True, stream=True)
    async def ask(question: str, callback: Any) -> dict[str, Any]:
        for i in range(20):
            await callback.acall(f"{question}-{i}")
            if i % 5 == 4:
                await asyncio.sleep(0)
        return {"asked": question}

    @node(stream=True)
    async def search(callback: Any) -> dict[str, Any]:
        for i in range(5):
            await callback.acall(f"hit-{i}")
        return {"hits": 5}

    @node
    async def rank() -> dict[str, Any]:
        await asyncio.sleep(0.005)
        return {"ranked": True}

    @node
    async def merge(hits: int, ranked: bool) -> dict[str, Any]:
        return {"merged": [hits, ranked]}

    @node(end=True, stream=True)
    async def answer(asked: str, callback: Any) -> dict[str, Any]:
        await callback.acall("done")
        return {"answer": asked.upper()}

    g = Graph()
    for n in (ask, search, rank, merge, answer):
        g.add_node(n)
    g.add_parallel(ask, [search, rank]).add_join([search, rank], merge).add_edge(merge, answer)
    return g.compile()


async def _one(graph: Graph) -> tuple[dict[str, Any], list[Any]]:
    cb = Callback()

    async def drain() -> list[Any]:
        return [t async for t in cb.aiter()]

    consumer = asyncio.ensure_future(drain())
    result = await bounded(graph.execute({"question": "why"}, callback=cb), what="execute()")
    tokens = await bounded(consumer, what="the consumer")
    return result, tokens


async def _runs(graph: Graph, n: int, pause: float = 0.0) -> list[tuple[dict[str, Any], list[Any]]]:
    out: list[tuple[dict[str, Any], list[Any]]] = []
    for start in range(0, n, BATCH):
        out.extend(await asyncio.gather(*(_one(graph) for _ in range(min(BATCH, n - start)))))
        if pause:
            await asyncio.sleep(pause)
    return out


async def _baseline(graph: Graph) -> tuple[dict[str, Any], list[Any]]:
    telemetry.uninstrument()
    try:
        return await _one(graph)
    finally:
        telemetry.instrument()


async def _shutdown_s(fn: Any, what: str) -> float:
    t0 = time.monotonic()
    await bounded(asyncio.to_thread(fn), timeout=60, what=f"{what} shutdown (the SDK hangs)")
    return time.monotonic() - t0


@pytest.mark.slow
@pytest.mark.parametrize(
    "endpoint",
    [(p, f) for p in ("grpc", "http") for f in ("down", "slow", "failing")],
    ids=lambda pf: f"{pf[0]}-{pf[1]}",
    indirect=True,
)
async def test_faulty_exporter_changes_nothing(endpoint: tuple[str, int]) -> None:
    graph = _graph()
    want = await _baseline(graph)
    assert want[1][-1] == "<graphai:END:>"
    await _runs(graph, BATCH)  # warm up allocator and caches before measuring RSS

    tp, mp = _providers(*endpoint)
    telemetry.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        rss0 = rss_bytes()
        t0 = time.monotonic()
        got = await _runs(graph, FAULT_RUNS, pause=0.05)
        run_s = time.monotonic() - t0
        growth_mb = (rss_bytes() - rss0) / MB
    finally:
        telemetry.instrument()
        tp_s = await _shutdown_s(tp.shutdown, "TracerProvider")
        mp_s = await _shutdown_s(mp.shutdown, "MeterProvider")
    print(
        f"{endpoint}: runs {run_s:.2f}s shutdown tp {tp_s:.2f}s mp {mp_s:.2f}s, RSS +{growth_mb:.1f} MB"
    )

    assert len(got) == FAULT_RUNS
    bad = [i for i, r in enumerate(got) if r != want]
    assert bad == [], (
        f"runs {bad[:5]} differ from the run without telemetry: {got[bad[0]]} != {want}"
    )
    assert growth_mb < RSS_LIMIT_MB, f"RSS grew {growth_mb:.1f} MB over {FAULT_RUNS} runs"
    assert tp_s < SHUTDOWN_BOUND_S, f"TracerProvider.shutdown() took {tp_s:.2f}s"
    assert mp_s < SHUTDOWN_BOUND_S, f"MeterProvider.shutdown() took {mp_s:.2f}s"


def _scrape_once(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def _scrape_loop(url: str, stop: threading.Event, bodies: list[str], errors: list[str]) -> None:
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status != 200:
                    errors.append(f"HTTP {resp.status}")
                bodies.append(resp.read().decode())
        except Exception as exc:
            errors.append(repr(exc))


async def test_prometheus_scrape_under_load_changes_nothing() -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    graph = _graph()
    want = await _baseline(graph)
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    mp = MeterProvider(metric_readers=[reader])
    server, server_thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    stop = threading.Event()
    bodies: list[str] = []
    errors: list[str] = []
    scraper = threading.Thread(target=_scrape_loop, args=(url, stop, bodies, errors), daemon=True)
    telemetry.instrument(meter_provider=mp)
    try:
        # one run first: before the first measurement OTel's reader exposes nothing (an empty
        # 200, by design), and a scrape that lands then would not be a truncated one
        got = await _runs(graph, 1)
        scraper.start()
        got += await _runs(graph, FAULT_RUNS)
        # on a loaded machine the runs can outpace the first scrape: keep the load on until a
        # few scrapes completed during it (bounded)
        deadline = time.monotonic() + 20
        while len(bodies) < 3 and time.monotonic() < deadline:
            got += await _runs(graph, 10)
        stop.set()
        await bounded(asyncio.to_thread(scraper.join, 10), timeout=15, what="the scraper")
        n_during = len(bodies)
        final = await bounded(asyncio.to_thread(_scrape_once, url), what="a final scrape")
    finally:
        stop.set()
        telemetry.instrument()
        server.shutdown()
        server.server_close()
        server_thread.join(5)
        mp.shutdown()

    assert errors == []
    assert [r == want for r in got] == [True] * len(got)
    assert n_during >= 3, "no scrape completed while the runs executed"
    assert all("# TYPE" in b for b in bodies), "an empty or truncated exposition"
    assert "graphai_node_duration_seconds_count" in final
    count = sum(
        float(line.rsplit(" ", 1)[1])
        for line in final.splitlines()
        if line.startswith("graphai_graph_duration_seconds_count{")
    )
    assert count == len(got), f"graph runs counted in the final scrape: {count}"
