"""
The ``/metrics`` endpoint ``configure(prometheus_addr=...)`` starts, against hostile and slow
clients: idle and half-sent connections, oversized heads, other methods, a failing collector,
shutdown with stuck connections, and Debian's Prometheus scraping through it all.

Every socket has a timeout and is closed in ``finally``; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import graphai.telemetry._http as tprom
from graphai import Graph, _hooks, node
from graphai.telemetry.setup import TelemetryHandle, configure
from tests._tools import poll
from tests.integration.prom_fixtures import run_prometheus

POOL = 8  # graphai.telemetry._prometheus._METRICS_WORKERS
IDLE, HALF = 100, 20  # stuck connections: send nothing / half a request line
HALF_LINE = b"GET /metrics HT"
SOCK_TIMEOUT_S = 5.0


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* / GRAPHAI_* from the caller's shell; graphai's instrumentation restored after."""
    for k in list(os.environ):
        if k.startswith(("OTEL_", "GRAPHAI_")):
            monkeypatch.delenv(k)
    before = _hooks.get_instrumentation()
    yield
    _hooks.set_instrumentation(before)


@node(start=True, end=True, name="probe")
async def probe() -> dict[str, Any]:
    return {}


def _run(graph: Graph) -> None:
    asyncio.run(asyncio.wait_for(graph.compile().execute({}), 10))


def _open(**kw: Any) -> TelemetryHandle:
    kw.setdefault("service_name", "hostile")
    h = configure(prometheus_addr="127.0.0.1:0", set_global=False, traces=False, logs=False, **kw)
    assert h.prometheus_addr is not None
    return h


@pytest.fixture
def handle() -> Iterator[TelemetryHandle]:
    """An endpoint with graphai series in it (one graph run), shut down (bounded) after."""
    h = _open()
    try:
        _run(Graph(name="hostile").add_node(probe))
        yield h
    finally:
        h.shutdown(timeout_s=5)


def _hostport(h: TelemetryHandle) -> tuple[str, int]:
    assert h.prometheus_addr is not None
    host, port = h.prometheus_addr.rsplit(":", 1)
    return host, int(port)


def _scrape(h: TelemetryHandle, timeout: float = 5.0) -> tuple[int, str, float]:
    """(status, body, seconds) of one GET /metrics."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(f"http://{h.prometheus_addr}/metrics", timeout=timeout) as r:
        body = r.read().decode()
        return int(r.status), body, time.perf_counter() - t0


@contextlib.contextmanager
def _stuck(h: TelemetryHandle, idle: int = IDLE, half: int = HALF) -> Iterator[list[socket.socket]]:
    """``idle`` connections that send nothing and ``half`` that send half a request line."""
    socks: list[socket.socket] = []
    try:
        for i in range(idle + half):
            s = socket.create_connection(_hostport(h), timeout=SOCK_TIMEOUT_S)
            socks.append(s)
            if i >= idle:
                s.sendall(HALF_LINE)
            if i % 50 == 49:
                time.sleep(0.01)  # let the accept loop run (GIL), as a separate client would
        time.sleep(0.3)  # let the server accept them all
        yield socks
    finally:
        for s in socks:
            s.close()


def _raw(h: TelemetryHandle, data: bytes) -> bytes:
    """Send ``data``, return all the server replies until it closes (b"" if reset)."""
    out = b""
    with socket.create_connection(_hostport(h), timeout=SOCK_TIMEOUT_S) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return out


def _metrics_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("graphai-metrics")]


class TestStuckClients:
    """Idle and half-sent connections hold no worker, are closed after the head timeout, and
    neither delay a scrape nor grow the thread count."""

    def test_scrape_answers_within_1s_while_120_connections_are_stuck(
        self, handle: TelemetryHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tprom, "_METRICS_HEAD_TIMEOUT_S", 60.0)  # stay stuck throughout
        with _stuck(handle):
            for _ in range(3):
                status, text, took = _scrape(handle)
                assert status == 200
                assert "graphai_graph_duration_seconds_count{" in text
                assert took < 1.0, f"scrape took {took:.3f}s with {IDLE + HALF} stuck connections"

    def test_idle_and_half_sent_connections_are_closed_after_the_head_timeout(
        self, handle: TelemetryHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tprom, "_METRICS_HEAD_TIMEOUT_S", 0.5)
        with _stuck(handle, idle=5, half=5) as socks:
            t0 = time.perf_counter()
            for s in socks:
                try:
                    assert s.recv(1024) == b""  # closed without a reply
                except ConnectionResetError:
                    pass
            took = time.perf_counter() - t0
        assert took < 3.0, took
        assert _scrape(handle)[0] == 200

    def test_thread_count_stays_bounded_with_120_connections_open(
        self, handle: TelemetryHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tprom, "_METRICS_HEAD_TIMEOUT_S", 60.0)
        assert _scrape(handle)[0] == 200
        before = threading.active_count()
        with _stuck(handle):
            during = threading.active_count()
            named = len(_metrics_threads())
            assert _scrape(handle)[0] == 200
        assert named <= POOL + 2, [t.name for t in _metrics_threads()]
        assert during - before <= 2, f"{during - before} threads more with {IDLE + HALF} open"

    def test_more_than_256_pending_connections_close_the_oldest(
        self, handle: TelemetryHandle, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tprom, "_METRICS_HEAD_TIMEOUT_S", 60.0)
        with _stuck(handle, idle=300, half=0) as socks:
            first = socks[0]
            first.settimeout(3.0)
            try:
                assert first.recv(1) == b""
            except ConnectionResetError:
                pass
            assert _scrape(handle)[0] == 200


class TestBadRequests:
    """Other methods get 405, oversized heads 414/431 (or a close), a failing collector 500; the
    next scrape is served either way."""

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    def test_methods_other_than_get_and_head_get_405(
        self, handle: TelemetryHandle, method: str
    ) -> None:
        conn = http.client.HTTPConnection(*_hostport(handle), timeout=SOCK_TIMEOUT_S)
        try:
            conn.request(method, "/metrics", body=b"x" * 2000)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 405
            assert resp.getheader("Allow") == "GET, HEAD"
        finally:
            conn.close()
        assert _scrape(handle)[0] == 200

    def test_head_gets_the_headers_without_a_body(self, handle: TelemetryHandle) -> None:
        conn = http.client.HTTPConnection(*_hostport(handle), timeout=SOCK_TIMEOUT_S)
        try:
            conn.request("HEAD", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200
            assert (resp.getheader("Content-Type") or "").startswith("text/plain; version=")
            assert int(resp.getheader("Content-Length") or 0) > 0
            assert resp.read() == b""
        finally:
            conn.close()

    @pytest.mark.parametrize(
        ("what", "request_bytes", "status"),
        [
            (
                "one 64 KiB header",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
                b"431",
            ),
            (
                "64 headers of 1 KiB",
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                + b"".join(b"X-H%d: " % i + b"a" * 1024 + b"\r\n" for i in range(64))
                + b"\r\n",
                b"431",
            ),
            ("a 16 KiB request line", b"GET /" + b"a" * 16384 + b" HTTP/1.1\r\n\r\n", b"414"),
            ("64 KiB without a newline", b"G" * 65536, b"414"),
        ],
    )
    def test_oversized_heads_get_414_431_or_a_close(
        self, handle: TelemetryHandle, what: str, request_bytes: bytes, status: bytes
    ) -> None:
        reply = _raw(handle, request_bytes)
        assert reply == b"" or reply.split(b" ", 2)[1] == status, (what, reply[:200])
        assert _scrape(handle)[0] == 200

    def test_a_raising_collector_gives_500_for_that_scrape_only(
        self, handle: TelemetryHandle
    ) -> None:
        readers = handle.meter_provider._metric_readers  # type: ignore[union-attr]
        collector = next(r for r in readers if hasattr(r, "_collector"))._collector
        good = collector._callback
        calls = []

        def fail_once() -> None:
            calls.append(1)
            collector._callback = good
            raise RuntimeError("collector broke")

        collector._callback = fail_once
        try:
            with pytest.raises(urllib.error.HTTPError) as err:
                _scrape(handle)
            assert err.value.code == 500
            assert b"RuntimeError" in err.value.read()
        finally:
            collector._callback = good
        assert calls == [1]
        status, text, _ = _scrape(handle)
        assert status == 200 and "graphai_graph_duration_seconds_count{" in text


class TestShutdown:
    def test_shutdown_with_120_stuck_connections_is_bounded_and_leaves_no_thread(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tprom, "_METRICS_HEAD_TIMEOUT_S", 60.0)
        baseline = set(threading.enumerate())
        h = _open()
        try:
            assert _scrape(h)[0] == 200
            with _stuck(h) as socks:
                t0 = time.perf_counter()
                assert h.shutdown(timeout_s=5)
                took = time.perf_counter() - t0
                assert took < 2.0, f"shutdown took {took:.3f}s"

                def gone() -> bool:
                    left = [t for t in threading.enumerate() if t not in baseline and t.is_alive()]
                    if left:
                        raise AssertionError([t.name for t in left])
                    return True

                poll(gone, 2.0, interval=0.05, what="no thread of the endpoint left")
                assert not _metrics_threads()
                socks[0].settimeout(2.0)
                try:
                    assert socks[0].recv(1) == b""  # the server closed it
                except ConnectionResetError:
                    pass
        finally:
            h.shutdown(timeout_s=2)


@pytest.mark.integration
def test_real_prometheus_scrapes_up_while_120_connections_are_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tprom, "_METRICS_HEAD_TIMEOUT_S", 120.0)
    h = _open()
    try:
        _run(Graph(name="hostile").add_node(probe))
        target = h.prometheus_addr or ""
        with _stuck(h) as socks, run_prometheus(tmp_path / "prom", [target], []) as prom:
            poll(prom.targets_up, 20, what="graphai target up")

            def scraped_ok() -> bool:
                up = prom.query('up{job="graphai"}')
                graph = prom.query('graphai_graph_duration_seconds_count{job="graphai"}')
                return bool(up) and up[0]["value"][1] == "1" and bool(graph)

            poll(scraped_ok, 20, what="up == 1 and graphai series scraped")
            took = float(prom.query('scrape_duration_seconds{job="graphai"}')[0]["value"][1])
            assert took < 1.0, took
            for s in (socks[0], socks[-1]):  # still stuck: the scrapes went past them
                s.setblocking(False)
                with pytest.raises(BlockingIOError):
                    s.recv(1)
    finally:
        assert h.shutdown(timeout_s=5)


def test_a_lone_surrogate_node_name_does_not_break_later_scrapes(handle: TelemetryHandle) -> None:
    @node(start=True, end=True, name="x\udcffy")
    async def odd() -> dict[str, Any]:
        return {}

    _run(Graph(name="hostile").add_node(odd))
    for _ in range(2):
        status, text, _ = _scrape(handle)
        assert status == 200 and "graphai_graph_duration_seconds_count{" in text
