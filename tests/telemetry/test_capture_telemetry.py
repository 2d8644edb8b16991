"""``graphai.telemetry.testing.capture_telemetry``: in-memory spans, metrics and logs of a
user's own runs, globals untouched, the previous instrumentation and structlog restored."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace

import graphai.telemetry as telemetry
from graphai import Callback, Graph, _hooks, node
from graphai.telemetry import _state, env
from graphai.telemetry import names as N
from graphai.telemetry.logging import add_graph_context
from graphai.telemetry.testing import (
    TelemetryCapture,
    capture_telemetry,
    restore_instrumentation,
    save_instrumentation,
)

ROOT = Path(__file__).resolve().parents[2]
TOKENS = ("Hel", "lo", " ", "world")


def agent_graph(name: str = "assistant") -> Graph:
    @node(start=True)
    async def prep(q: str) -> dict:
        return {"q": q.strip()}

    @node(kind="agent")
    async def planner(q: str) -> dict:
        return {"plan": f"answer {q}"}

    @node(end=True, stream=True, kind="llm", model="fake-llm")
    async def answer(plan: str, callback) -> dict:
        for t in TOKENS:
            await callback.acall(t)
        return {"answer": "".join(TOKENS)}

    g = Graph(name=name).add_node(prep()).add_node(planner()).add_node(answer())
    return g.add_edge(prep, planner).add_edge(planner, answer)


async def drive(graph: Graph, payload: dict | None = None) -> dict:
    cb = Callback()

    async def consume() -> list:
        return [t async for t in cb.aiter()]

    res, _ = await asyncio.wait_for(
        asyncio.gather(graph.execute(payload or {"q": " hi "}, callback=cb), consume()), 10
    )
    return res


@pytest.fixture(autouse=True)
def _instrumentation_restored():
    """Whatever a test here does, the next test sees graphai's instrumentation as before."""
    saved = save_instrumentation()
    yield
    restore_instrumentation(saved)


class TestSignals:
    """``capture_telemetry()`` gives the spans, metrics (gauges included) and structlog lines of
    the runs inside the block, with the settings given, and puts structlog's configuration back."""

    async def test_span_tree(self) -> None:
        with capture_telemetry() as t:
            res = await drive(agent_graph())
        assert res == {"q": "hi", "plan": "answer hi", "answer": "Hello world"}
        # end order: each node span ends before the run span
        assert [s.name for s in t.spans()] == [
            "prep",
            "invoke_agent planner",
            "chat fake-llm",
            "invoke_workflow assistant",
        ]
        run = t.span("invoke_workflow assistant")
        assert run.parent is None
        for name in ("prep", "invoke_agent planner", "chat fake-llm"):
            s = t.span(name)
            assert s.parent is not None and s.parent.span_id == run.context.span_id, name
            assert s.context.trace_id == run.context.trace_id
        assert t.span("invoke_agent planner").attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        assert [s.name for s in t.spans("prep")] == ["prep"]
        assert t.spans("nope") == []

    async def test_metrics(self) -> None:
        with capture_telemetry() as t:
            await drive(agent_graph())
            inside = t.value(N.NODE_OUTPUT_TOKENS)
        assert inside == len(TOKENS)  # readable inside the block, and after it
        for name in ("prep", "planner", "answer"):
            assert t.value(N.NODE_DURATION, **{N.NODE_NAME: name}) == 1, name
            (pt,) = t.metric(N.NODE_DURATION, graphai__node__name=name)
            assert pt.attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        assert t.value(N.NODE_OUTPUT_TOKENS, **{N.NODE_NAME: "answer"}) == len(TOKENS)
        assert t.value(N.NODE_OUTPUT_TOKENS, **{N.NODE_NAME: "planner"}) == 0
        assert t.value(N.GRAPH_DURATION, **{N.RUN_OUTCOME: N.OUTCOME_OK}) == 1
        assert t.metric(N.NODE_DURATION, **{N.NODE_NAME: "nope"}) == []
        assert {N.NODE_DURATION, N.NODE_OUTPUT_TOKENS, N.GRAPH_DURATION} <= set(t.metric_names())
        # gauges: collected at exit while the capture was installed
        assert t.value(N.NODE_ACTIVE) == 0
        assert {p.attributes[N.NODE_NAME] for p in t.metric(N.NODE_ACTIVE)} == {
            "prep",
            "planner",
            "answer",
        }

    async def test_logs_flow_without_structlog_configured(self) -> None:
        assert not structlog.is_configured()
        with capture_telemetry() as t:
            await drive(agent_graph())
            assert structlog.is_configured()
        assert not structlog.is_configured()
        events = [e["event"] for e in t.logs]
        assert events.count(N.LOG_NODE_END) == 3
        (end,) = [e for e in t.logs if e["event"] == N.LOG_RUN_END]
        assert end["outcome"] == "ok" and end["tokens"] == len(TOKENS)
        assert end["log_level"] == "info"
        assert end[N.GRAPH_NAME] == "assistant"

    async def test_structlog_configuration_restored(self) -> None:
        seen: list[str] = []

        def mine(_logger: object, _method: str, event_dict: dict) -> dict:
            seen.append(event_dict["event"])
            return event_dict

        procs = [mine, structlog.processors.JSONRenderer()]
        structlog.configure(processors=procs, logger_factory=structlog.ReturnLoggerFactory())
        before = structlog.get_config()
        with capture_telemetry(log_processors=[add_graph_context]) as t:
            await drive(agent_graph())
            structlog.get_logger("app").info("user.line")
        assert seen == []  # the capture replaced the processors for the block
        assert "user.line" in [e["event"] for e in t.logs]
        node_end = next(e for e in t.logs if e["event"] == N.LOG_NODE_END)
        assert node_end[N.RUN_ID]  # add_graph_context ran before the capture
        after = structlog.get_config()
        assert after["processors"] is before["processors"] and after["processors"] == procs
        assert structlog.is_configured()
        structlog.get_logger("app").info("after")
        assert seen == ["after"]

    async def test_logs_false_leaves_structlog_alone(self) -> None:
        with capture_telemetry(logs=False) as t:
            await drive(agent_graph())
            assert not structlog.is_configured()
        assert t.logs == []
        assert len(t.spans()) == 4

    async def test_async_with_and_settings_passthrough(self) -> None:
        async with capture_telemetry(capture_content=True, token_events="off") as t:
            await drive(agent_graph())
        assert t.settings == env.Settings(capture_content=True, token_events="off")
        llm = t.span("chat fake-llm")
        assert llm.attributes[N.NODE_OUTPUT] == '{"answer": "Hello world"}'
        assert [e.name for e in llm.events] == [N.EVENT_FIRST_TOKEN]
        base = env.Settings(token_events_max=2)
        with capture_telemetry(settings=base, capture_content=False) as t2:
            await drive(agent_graph())
        assert t2.settings == base
        assert t2.instrumentation is not None and t2.instrumentation.settings == base
        assert [e.name for e in t2.span("chat fake-llm").events].count(N.EVENT_TOKEN) == 2

    def test_bad_token_events(self) -> None:
        with pytest.raises(ValueError, match="token_events='bogus'"):
            capture_telemetry(token_events="bogus")


class TestIsolation:
    """The capture never touches the global providers, puts back the instrumentation installed
    before (whatever it was, also after an exception, a replacement inside or when nested) and
    shuts its providers down; a capture starts once."""

    async def test_globals_untouched(self) -> None:
        tp, mp = trace.get_tracer_provider(), otel_metrics.get_meter_provider()
        with capture_telemetry() as t:
            await drive(agent_graph())
            assert trace.get_tracer_provider() is tp
            assert otel_metrics.get_meter_provider() is mp
        assert trace.get_tracer_provider() is tp
        assert otel_metrics.get_meter_provider() is mp
        assert t.tracer_provider is not tp and t.meter_provider is not mp

    @pytest.mark.parametrize("before", ["unresolved", "uninstrumented", "instrumented"])
    async def test_previous_instrumentation_restored(self, before: str) -> None:
        if before == "unresolved":
            _state.INSTALLED[0] = None
            _hooks.set_instrumentation(None)
        elif before == "uninstrumented":
            telemetry.uninstrument()
        else:
            telemetry.instrument(settings=env.Settings())
        installed, current = _state.INSTALLED[0], _hooks.peek_instrumentation()
        with capture_telemetry() as t:
            assert _state.INSTALLED[0] is t.instrumentation is not None
            assert _hooks.peek_instrumentation() is t.instrumentation
            await drive(agent_graph())
        assert _state.INSTALLED[0] is installed
        assert _hooks.peek_instrumentation() is current
        if before == "unresolved":
            assert current is None
        elif before == "uninstrumented":
            assert current is _hooks.NOOP and installed is None
        else:
            assert installed is not None and current is installed
            assert ("assistant", "planner") not in installed.seen_labels

    async def test_restored_even_when_replaced_inside(self) -> None:
        saved = save_instrumentation()
        with capture_telemetry():
            telemetry.instrument(settings=env.Settings(label_limit=3))
        assert save_instrumentation() == saved

    async def test_exception_inside_still_restores(self) -> None:
        @node(start=True, end=True)
        async def boom() -> dict:
            raise RuntimeError("no")

        saved = save_instrumentation()
        with pytest.raises(RuntimeError, match="no"), capture_telemetry() as t:
            await Graph(name="bad").add_node(boom()).execute({})
        assert save_instrumentation() == saved
        assert not structlog.is_configured()
        assert t.span("boom").attributes[N.NODE_OUTCOME] == N.OUTCOME_ERROR
        (end,) = [e for e in t.logs if e["event"] == N.LOG_RUN_END]
        assert end["outcome"] == "error"
        assert t.value(N.GRAPH_DURATION, **{N.RUN_OUTCOME: N.OUTCOME_ERROR}) == 1

    async def test_async_exception_inside_still_restores(self) -> None:
        saved = save_instrumentation()
        with pytest.raises(KeyError):
            async with capture_telemetry():
                raise KeyError("x")
        assert save_instrumentation() == saved

    async def test_nesting(self) -> None:
        saved = save_instrumentation()
        with capture_telemetry() as outer:
            await drive(agent_graph("first"))
            with capture_telemetry() as inner:
                assert _state.INSTALLED[0] is inner.instrumentation
                await drive(agent_graph("second"))
            assert _state.INSTALLED[0] is outer.instrumentation
            assert _hooks.peek_instrumentation() is outer.instrumentation
            assert structlog.is_configured()  # the outer capture's configuration
            await drive(agent_graph("third"))
        assert save_instrumentation() == saved
        assert not structlog.is_configured()
        runs = lambda c: [s.name for s in c.spans() if s.name.startswith("invoke_workflow")]  # noqa: E731
        assert runs(outer) == ["invoke_workflow first", "invoke_workflow third"]
        assert runs(inner) == ["invoke_workflow second"]
        graphs = lambda c: sorted({e[N.GRAPH_NAME] for e in c.logs if e["event"] == N.LOG_RUN_END})  # noqa: E731
        assert graphs(outer) == ["first", "third"]
        assert graphs(inner) == ["second"]
        assert outer.value(N.NODE_OUTPUT_TOKENS) == 2 * len(TOKENS)
        assert inner.value(N.NODE_OUTPUT_TOKENS) == len(TOKENS)
        # the inner capture's gauge series never leak into the outer one
        assert {p.attributes[N.GRAPH_NAME] for p in outer.metric(N.NODE_ACTIVE)} == {"first", "third"}
        assert {p.attributes[N.GRAPH_NAME] for p in inner.metric(N.NODE_ACTIVE)} == {"second"}

    async def test_start_stop_and_reuse(self) -> None:
        t = capture_telemetry(logs=False)
        assert isinstance(t, TelemetryCapture) and t.instrumentation is None
        t.start()
        await drive(agent_graph())
        t.stop()
        t.stop()  # idempotent
        assert len(t.spans()) == 4
        with pytest.raises(RuntimeError, match="only once"):
            t.start()

    async def test_providers_shut_down(self) -> None:
        with capture_telemetry(logs=False) as t:
            await drive(agent_graph())
        n = len(t.spans())
        # a span ended on the shut-down provider is not exported
        t.tracer_provider.get_tracer("x").start_span("late").end()
        assert len(t.spans()) == n


class TestSpanAssertion:
    """``span(name)`` asserts exactly one match and names the spans seen when there is not."""

    async def test_no_match_names_the_spans_seen(self) -> None:
        with capture_telemetry(logs=False) as t:
            await drive(agent_graph())
        with pytest.raises(AssertionError) as err:
            t.span("invoke_agent nobody")
        msg = str(err.value)
        assert "'invoke_agent nobody'" in msg and "found 0" in msg
        for name in ("prep", "invoke_agent planner", "chat fake-llm", "invoke_workflow assistant"):
            assert repr(name) in msg

    async def test_two_matches(self) -> None:
        with capture_telemetry(logs=False) as t:
            await drive(agent_graph())
            await drive(agent_graph())
        with pytest.raises(AssertionError, match=r"exactly one span 'prep', found 2; spans seen: \["):
            t.span("prep")
        assert len(t.spans("prep")) == 2


def test_docs_example_runs(tmp_path: Path) -> None:
    """The example of docs/telemetry.md "Testing your graphs" passes under pytest."""
    doc = (ROOT / "docs" / "telemetry.md").read_text(encoding="utf-8")
    start = doc.index("## Testing your graphs")
    end = doc.find("\n## ", start + 1)
    section = doc[start : end if end != -1 else None]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "no python example in 'Testing your graphs'"
    (tmp_path / "test_doc_example.py").write_text(code.group(1), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b1 passed\b", proc.stdout), proc.stdout


def test_without_the_sdk_the_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry.sdk'] = None\n"
        "sys.modules['opentelemetry.sdk.metrics'] = None\n"
        "try:\n"
        "    import graphai.telemetry.testing\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "[otel]" in proc.stdout and "graphai.telemetry.testing" in proc.stdout
