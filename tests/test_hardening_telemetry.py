"""Telemetry hardening: instrument() twice, failures inside telemetry (counted at one seam,
never changing a run), labels that cannot be encoded, and no content while capture is off.

Every case here failed before the fix it names; every wait is bounded."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import ExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node, router
from graphai.telemetry import _guard, env
from graphai.telemetry import names as N
from graphai.telemetry.logging import configure_logging
from tests._otel import Signals
from tests._stream import TIMEOUT, drain
from tests._stream import run_with_consumer as _run_with_consumer

pytestmark = pytest.mark.asyncio


async def run_with_consumer(g: Graph, inp: dict[str, Any]) -> tuple[Any, list[Any]]:
    """(result, consumer items); execute()'s exception is raised after the stream ended."""
    result, error, items = await _run_with_consumer(g, inp)
    if error is not None:
        raise error
    return result, items


def _active(sig: Signals, node_name: str) -> float:
    pts = [p for p in sig.points(N.NODE_ACTIVE) if p.attributes.get(N.NODE_NAME) == node_name]
    return sum(p.value for p in pts)


def _parked_graph(release: asyncio.Event, started: asyncio.Event) -> Graph:
    @node(start=True, end=True, stream=True)
    async def park(callback: Any) -> dict[str, Any]:
        started.set()
        await callback.acall("t")
        await release.wait()
        return {}

    return Graph(name="parked").add_node(park).compile()


@pytest.fixture
def fresh_errors() -> Iterator[None]:
    _guard._logged.clear()
    yield
    _guard._logged.clear()


# -- case 11: instrument() twice ---------------------------------------------------------------
class TestInstrumentTwice:
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


# -- case 12 and 17: failures inside telemetry ----------------------------------------------
def _streaming_graph() -> Graph:
    @node(start=True, stream=True)
    async def speak(callback: Any, q: Any) -> dict[str, Any]:
        for t in ("a", "bb", "ccc"):
            await callback.acall(t)
        return {"said": 3}

    @node(end=True)
    async def done(said: int) -> dict[str, Any]:
        return {"total": said}

    return Graph(name="speaker").add_node(speak).add_node(done).add_edge(speak, done).compile()


EXPECTED_TOKENS = [
    "<graphai:speak:start:>",
    "<graphai:speak:>",
    "a",
    "bb",
    "ccc",
    "<graphai:speak:end:>",
    "<graphai:END:>",
]


def _errors(sig: Signals) -> dict[str, int]:
    return {
        str(p.attributes[N.INTERNAL_ERROR_WHERE]): int(p.value)
        for p in sig.points(N.INTERNAL_ERRORS)
    }


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


class TestLabelOverflowCountsOnce:
    """Each replaced value counts once, also past the rejected-values memory bound."""

    async def test_beyond_the_memory_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        sig = Signals(env.Settings(label_limit=2))
        try:
            sig.instr.instruments()  # type: ignore[union-attr]
            guard = sig.instr.guard  # type: ignore[union-attr]
            total = 10_050  # past the old 10k bound, which then counted every use
            for _ in range(2):
                for i in range(total):
                    guard(N.NODE_NAME, f"n{i}")
            (pt,) = sig.points(N.LABEL_OVERFLOW)
            assert pt.value == total - 2
        finally:
            telemetry.instrument()
            sig.close()


# -- case 13 (label boundary): names that cannot be encoded -------------------------------------
class TestUnencodableNames:
    async def test_scrapes_and_spans_survive_a_surrogate_node_name(self) -> None:
        registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=registry)
        mp = MeterProvider(metric_readers=[reader])
        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        telemetry.instrument(tracer_provider=tp, meter_provider=mp)
        name = b"bad\xffname".decode("utf-8", "surrogateescape")  # 'bad\udcffname'
        try:

            @node(start=True, end=True, name=name, stream=True)
            async def odd(callback: Any) -> dict[str, Any]:
                await callback.acall("t")
                return {}

            cb = Callback()
            consumer = asyncio.ensure_future(drain(cb))
            await asyncio.wait_for(Graph(name="g").add_node(odd).execute({}, callback=cb), TIMEOUT)
            items = await asyncio.wait_for(consumer, TIMEOUT)
            assert items[0] == f"<graphai:{name}:start:>"  # the stream keeps the name as is
            text = generate_latest(registry).decode()  # raised UnicodeEncodeError before
            assert 'graphai_node_name="bad\\\\udcffname"' in text
            (span,) = exporter.get_finished_spans()[:1]
            assert span.name == "bad\\udcffname"
            assert span.attributes[N.NODE_NAME] == "bad\\udcffname"
            generate_latest(registry)  # and every later scrape
        finally:
            telemetry.instrument()
            tp.shutdown()
            mp.shutdown()


# -- case 14: content capture off means no content ----------------------------------------------
MARK = "zqxcontentmark"


def _content_graph() -> Graph:
    @node(start=True, stream=True)
    async def intake(callback: Any, query: str) -> dict[str, Any]:
        for word in query.split():
            await callback.acall(word)
        return {"echo": query, "items": [query, {"k": query}]}

    @router
    async def route(echo: str) -> dict[str, Any]:
        return {"choice": "answer", "note": echo}

    @node(stream=True)
    async def answer(callback: Any, echo: str) -> dict[str, Any]:
        await callback.acall(f"{MARK}-answer")
        return {"answer": echo}

    @node(end=True)
    async def finish(answer: str) -> dict[str, Any]:
        return {"final": answer}

    @node
    async def side(echo: str) -> dict[str, Any]:
        raise ValueError(f"side failed on {echo}")

    return (
        Graph(name="content")
        .add_node(intake)
        .add_node(route)
        .add_node(answer)
        .add_node(finish)
        .add_node(side)
        .add_edge(intake, route)
        .add_router(sources=[route], router=route, destinations=[answer, finish])
        .add_edge(answer, finish)
        .add_branch(intake, side)
        .compile()
    )


def _failing_graphs() -> list[tuple[Graph, type[BaseException]]]:
    @node(start=True, end=True)
    async def not_a_dict(query: str) -> Any:
        return f"plain {query}"

    @router(start=True)
    async def lost(query: str) -> dict[str, Any]:
        return {"choice": f"{query} is no node"}

    @node(end=True)
    async def unreachable() -> dict[str, Any]:
        return {}

    @node(start=True, end=True)
    async def raises(query: str) -> dict[str, Any]:
        raise RuntimeError(f"boom {query}")

    return [
        (Graph(name="nodict").add_node(not_a_dict).compile(), Exception),
        (
            Graph(name="lost")
            .add_node(lost)
            .add_node(unreachable)
            .add_router(sources=[lost], router=lost, destinations=[unreachable])
            .compile(),
            Exception,
        ),
        (Graph(name="raises").add_node(raises).compile(), RuntimeError),
    ]


def _span_texts(span: Any) -> list[str]:
    out = [span.name, str(span.status.description)]
    out += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for ev in span.events:
        out.append(ev.name)
        out += [f"{k}={v}" for k, v in (ev.attributes or {}).items()]
    for link in span.links:
        out += [f"{k}={v}" for k, v in (link.attributes or {}).items()]
    return out


class TestNoContentWithCaptureOff:
    async def test_marker_nowhere(self, caplog: pytest.LogCaptureFixture) -> None:
        from graphai._demo import Sim, build_graph

        sig = Signals(env.Settings(capture_content=False, token_events="all"))
        buf = io.StringIO()
        configure_logging(json=True, file=buf, level="debug")
        query = f"refund {MARK} order 4242 {MARK}"
        try:
            with caplog.at_level(logging.DEBUG, logger="graphai"):
                # the demo graph, marker in every input, so in its outputs and tokens too
                demo = build_graph(Sim(speed=1000.0))
                inp = {"query": query, "order": MARK, "user": MARK, "seed": 7}
                _res, toks = await run_with_consumer(demo, inp)
                assert any(MARK in str(t) for t in toks)  # the marker did flow through
                res, toks = await run_with_consumer(_content_graph(), {"query": query})
                assert res["final"] == query and f"{MARK}-answer" in toks
                for g, exc_type in _failing_graphs():
                    with pytest.raises(exc_type) as info:
                        await run_with_consumer(g, {"query": query})
                    assert MARK in str(info.value)  # the caller still gets the full message
        finally:
            structlog.reset_defaults()
            telemetry.instrument()
        try:
            spans = sig.spans()
            assert len(spans) > 10
            texts = [t for s in spans for t in _span_texts(s)]
            # exception events were recorded, with the message redacted
            assert any(t == f"exception.message={N.REDACTED}" for t in texts)
            leaks = [t for t in texts if MARK in t]
            assert leaks == []
            data = sig.reader.get_metrics_data()
            assert data is not None
            labels = json.dumps(
                [
                    dict(p.attributes)
                    for rm in data.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                    for p in m.data.data_points
                ]
            )
            assert "content" in labels and MARK not in labels
            logs = buf.getvalue()
            assert "node.error" in logs and MARK not in logs
            std = [r.getMessage() for r in caplog.records if r.name == "graphai"]
            assert not [m for m in std if MARK in m]
        finally:
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
