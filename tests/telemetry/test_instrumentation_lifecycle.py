"""Installing graphai's instrumentation (hardening case 11): ``import graphai`` does no telemetry
work and the first run installs the default; ``instrument()`` with the same providers is a
no-op with a warning, with others it replaces cleanly, gauges follow the installed
instrumentation and runs in flight stay counted; a second ``configure()`` reuses the first;
telemetry switched off records nothing."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from opentelemetry import trace

import graphai.telemetry as telemetry
from graphai import Graph, node
from graphai.telemetry import names as N
from tests._otel import Signals
from tests._stream import TIMEOUT
from tests.telemetry._support import (
    _active,
    _streaming_graph,
    execute_and_drain,
    linear_graph,
    run_with_consumer,
)

LAZY_IMPORT = r"""
import asyncio, sys
import graphai
print(sorted(m for m in sys.modules if m.startswith(("graphai.telemetry", "opentelemetry"))))

@graphai.node(start=True, end=True)
async def f() -> dict:
    return {}

asyncio.run(graphai.Graph().add_node(f).compile().execute({}))
import graphai.telemetry as t
print(t.is_instrumented(), "graphai.telemetry" in sys.modules)
"""


class TestLazyAndIdempotent:
    """``import graphai`` does no telemetry work; the first run installs the default; the
    same ``instrument()`` twice is a no-op with a warning; ``uninstrument()`` is respected."""

    async def test_import_does_no_telemetry_work(self) -> None:
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "-W", "error", "-c", LAZY_IMPORT],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.splitlines() == ["[]", "True True"]
        assert out.stderr == ""

    async def test_same_instrument_twice_is_a_noop_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        sig = Signals()
        try:
            with caplog.at_level(logging.WARNING, logger="graphai"):
                again = telemetry.instrument(tracer_provider=sig.tp, meter_provider=sig.mp)
            assert again is sig.instr
            msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
            assert msgs == ["telemetry.already_instrumented action='unchanged'"]
            other = telemetry.instrument(tracer_provider=sig.tp)  # other providers: replaced
            assert other is not sig.instr and other is not None
        finally:
            telemetry.instrument()
            sig.close()

    async def test_uninstrument_is_respected_by_later_runs(self) -> None:
        sig = Signals()
        try:
            telemetry.uninstrument()
            assert telemetry.is_instrumented() is False
            await run_with_consumer(_streaming_graph(), {"q": 1})
            assert sig.spans() == []
        finally:
            telemetry.instrument()
            sig.close()


def _parked_graph(release: asyncio.Event, started: asyncio.Event) -> Graph:
    @node(start=True, end=True, stream=True)
    async def park(callback: Any) -> dict[str, Any]:
        started.set()
        await callback.acall("t")
        await release.wait()
        return {}

    return Graph(name="parked").add_node(park).compile()


class TestInstrumentTwice:
    """``instrument()`` again with the same providers: nothing doubles, the gauges follow the
    new instrumentation, and a run in flight across the call stays counted and ends normally."""

    async def test_same_providers_gauges_follow_and_nothing_doubles(self) -> None:
        sig = Signals()
        try:
            await run_with_consumer(_streaming_graph(), {"q": 1})  # the first one's instruments
            telemetry.instrument(tracer_provider=sig.tp, meter_provider=sig.mp)  # again
            release, started = asyncio.Event(), asyncio.Event()
            g = _parked_graph(release, started)
            task = asyncio.ensure_future(run_with_consumer(g, {}))
            await asyncio.wait_for(started.wait(), TIMEOUT)
            # one series, not frozen at the first instrumentation's 0 beside the new one
            pts = [p for p in sig.points(N.NODE_ACTIVE) if p.attributes.get(N.NODE_NAME) == "park"]
            assert [p.value for p in pts] == [1]
            release.set()
            await asyncio.wait_for(task, TIMEOUT)
            assert _active(sig, "park") == 0
            (pt,) = [
                p for p in sig.points(N.NODE_DURATION) if p.attributes.get(N.NODE_NAME) == "park"
            ]
            assert pt.count == 1  # one histogram, one callback: recorded once
            active = [
                m.name
                for rm in (sig.reader.get_metrics_data() or []).resource_metrics  # type: ignore[union-attr]
                for sm in rm.scope_metrics
                for m in sm.metrics
                if m.name == N.NODE_ACTIVE
            ]
            assert active == [N.NODE_ACTIVE]
        finally:
            telemetry.instrument()
            sig.close()

    async def test_run_in_flight_across_reinstrument_stays_counted(self) -> None:
        sig = Signals()
        try:
            release, started = asyncio.Event(), asyncio.Event()
            task = asyncio.ensure_future(run_with_consumer(_parked_graph(release, started), {}))
            await asyncio.wait_for(started.wait(), TIMEOUT)
            telemetry.instrument(tracer_provider=sig.tp, meter_provider=sig.mp)
            assert _active(sig, "park") == 1
            assert [s["node"] for s in telemetry.active_streams()] == ["park"]
            release.set()
            await asyncio.wait_for(task, TIMEOUT)
            assert _active(sig, "park") == 0
            assert telemetry.active_streams() == []
            assert sig.span("park").attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        finally:
            telemetry.instrument()
            sig.close()


CONFIGURE_TWICE = r"""
import asyncio, threading, urllib.request
import graphai.telemetry as t
from graphai import Graph, node

h1 = t.configure(prometheus_addr="127.0.0.1:0", service_name="twice")
h2 = t.configure(prometheus_addr="127.0.0.1:0", service_name="twice")
assert h2.prometheus_addr is None and h2.tracer_provider is h1.tracer_provider
assert h2.meter_provider is h1.meter_provider

@node(start=True, end=True)
async def f() -> dict:
    return {}

asyncio.run(Graph(name="g").add_node(f).compile().execute({}))
url = f"http://{h1.prometheus_addr}/metrics"
text = urllib.request.urlopen(url, timeout=5).read().decode()
rows = [l for l in text.splitlines() if l.startswith("graphai_node_duration_seconds_count")]
active = [l for l in text.splitlines() if l.startswith("graphai_node_active{")]
print(rows)
print(active)
h2.shutdown()
h1.shutdown()
print(sorted(th.name for th in threading.enumerate()))
"""


class TestConfigureTwice:
    """A second ``configure()`` in one process reports to the first one's providers
    (``telemetry.providers_exist``): one series per metric, no second endpoint, no thread left."""

    async def test_second_configure_reuses_the_first_without_doubling(self) -> None:
        import subprocess
        import sys

        out = subprocess.run(
            [sys.executable, "-c", CONFIGURE_TWICE],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = out.stdout.splitlines()
        assert lines[0].endswith(" 1.0']") and lines[0].count("graphai_node_duration") == 1
        assert 'graphai_node_name="f"' in lines[0]
        assert 'graphai_node_name="f"' in lines[1] and lines[1].endswith(" 0.0']")
        assert lines[2] == "['MainThread']"
        assert "telemetry.providers_exist" in out.stderr


class TestOff:
    """GRAPHAI_TELEMETRY=off: no spans; API only (no SDK): nothing recorded, nothing breaks."""

    async def test_env_off(self, monkeypatch: pytest.MonkeyPatch, signals: Signals) -> None:
        import graphai.telemetry as t

        monkeypatch.setenv("GRAPHAI_TELEMETRY", "off")
        assert t.instrument(tracer_provider=signals.tp, meter_provider=signals.mp) is None
        assert not t.is_instrumented()
        await execute_and_drain(linear_graph(), {"q": "x"})
        assert signals.spans() == []

    async def test_api_only_global_noop(self) -> None:
        import graphai.telemetry as t

        t.instrument()  # global providers: proxies, no SDK
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        res, toks = await execute_and_drain(linear_graph(), {"q": "x"})
        assert res["len"] == 6 and toks[-1] == "<graphai:END:>"
