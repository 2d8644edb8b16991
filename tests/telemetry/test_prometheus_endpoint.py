"""The ``/metrics`` and ``/streams`` endpoint of ``configure()``: loopback, port 0, one registry
per handle, a busy address warned about and passed over, stopped at shutdown."""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider

from graphai.telemetry import env
from graphai.telemetry.setup import TelemetryHandle
from tests._stream import drain as _drain
from tests._tools import bindable, free_port, poll
from tests.telemetry._support import local, run_graph, scrape

pytestmark = pytest.mark.usefixtures("clean_env")


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
            assert logs[0]["retrying_for_s"] == 60.0


class TestPortInUseAtConfigure:
    """Every /metrics port taken at ``configure()`` (gunicorn's HUP starts the new workers
    while the old ones still hold the range): the handle retries in the background, serves the
    first port freed with every metric recorded meanwhile, and stops trying at shutdown; a
    failure that is not a taken port is not retried."""

    def test_the_port_freed_is_served_with_what_was_recorded_meanwhile(
        self, handles: list[TelemetryHandle]
    ) -> None:
        busy = socket.socket()
        try:
            busy.bind(("127.0.0.1", free_port()))
            busy.listen()
            port = busy.getsockname()[1]
            with structlog.testing.capture_logs() as logs:
                h = local(handles, prometheus_addr=f"127.0.0.1:{port}", service_name="retry")
                assert h.prometheus_addr is None and _retrying(h), logs
                assert h.meter_provider is not None
                h.meter_provider.get_meter("probe").create_counter("probe").add(3)
                busy.close()
                poll(lambda: h.prometheus_addr, 5.0, what="the freed port served")
        finally:
            busy.close()
        assert h.prometheus_addr == f"127.0.0.1:{port}"
        text = scrape(h.prometheus_addr)
        assert re.search(r'^probe_total\{.*\} 3\.0$', text, re.M), text
        assert 'service_name="retry"' in text
        events = [(e["event"], e.get("retried")) for e in logs]
        assert events == [("telemetry.prometheus_failed", None),
                          ("telemetry.prometheus_started", True)], logs  # fmt: skip
        assert "after_fork" not in logs[1]
        poll(lambda: not _retrying(h), 2.0, what="the retry thread to end")
        assert h.shutdown(timeout_s=3)
        with pytest.raises(urllib.error.URLError):  # shutdown stopped what the retries started
            scrape(f"127.0.0.1:{port}")

    def test_shutdown_stops_the_retries(self, handles: list[TelemetryHandle]) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", free_port()))
            busy.listen()
            port = busy.getsockname()[1]
            h = local(handles, prometheus_addr=f"127.0.0.1:{port}")
            assert _retrying(h)
            assert h.shutdown(timeout_s=3)
        with structlog.testing.capture_logs() as logs:
            poll(lambda: not _retrying(h), 2.0, what="the retry thread to stop")
        assert h.prometheus_addr is None and bindable(port) and logs == []

    def test_a_host_that_cannot_be_bound_is_not_retried(
        self, handles: list[TelemetryHandle]
    ) -> None:
        with structlog.testing.capture_logs() as logs:
            h = local(handles, prometheus_addr="192.0.2.1:9464")  # TEST-NET-1: no local address
        assert h.prometheus_addr is None and h._rebind_thread is None
        (failed,) = logs
        assert failed["event"] == "telemetry.prometheus_failed"
        assert "retrying_for_s" not in failed and "hint" not in failed, failed


def _retrying(h: TelemetryHandle) -> bool:
    """``h``'s own retry thread is alive (another test's handle may still be winding down)."""
    thread = h._rebind_thread
    return thread is not None and thread.is_alive()
