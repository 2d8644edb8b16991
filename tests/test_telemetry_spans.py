"""Spans: the tree, names, attributes, events, status and content policy of docs/telemetry.md."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from graphai import Callback, Graph, node, router
from graphai.telemetry import env
from tests._otel import Signals, make_signals


async def run_with_consumer(graph: Graph, payload: dict, cb: Callback | None = None) -> tuple[dict, list]:
    cb = cb or Callback()

    async def consume() -> list:
        return [t async for t in cb.aiter()]

    res, toks = await asyncio.wait_for(asyncio.gather(graph.execute(payload, callback=cb), consume()), 10)
    return res, toks


def linear_graph() -> Graph:
    @node(start=True)
    async def prep(q: str) -> dict:
        return {"q": q.upper()}

    @node(stream=True, kind="llm", model="fake-1")
    async def llm(q: str, callback) -> dict:
        await asyncio.sleep(0.05)
        for t in ("a", "bb", "ccc"):
            await callback.acall(t)
            await asyncio.sleep(0.01)
        return {"answer": "abbccc"}

    @node(end=True)
    async def done(answer: str) -> dict:
        return {"len": len(answer)}

    g = Graph(name="lin").add_node(prep()).add_node(llm()).add_node(done())
    return g.add_edge(prep, llm).add_edge(llm, done)


class TestSpanTree:
    """Every node span is a child of the run span, which is a child of the caller's span."""

    async def test_linear_tree_and_names(self, signals: Signals) -> None:
        res, _ = await run_with_consumer(linear_graph(), {"q": "hi"})
        assert res == {"q": "HI", "answer": "abbccc", "len": 6}
        run = signals.span("invoke_workflow lin")
        assert run.parent is None
        names = [s.name for s in signals.spans() if s is not run]
        assert sorted(names) == ["chat fake-1", "done", "prep"]
        for s in signals.spans():
            if s is not run:
                assert s.parent is not None and s.parent.span_id == run.context.span_id
                assert s.context.trace_id == run.context.trace_id
        assert run.attributes["gen_ai.operation.name"] == "invoke_workflow"
        assert run.attributes["gen_ai.workflow.name"] == "lin"
        assert run.attributes["graphai.graph.name"] == "lin"
        assert len(run.attributes["graphai.run.id"]) == 32
        assert run.attributes["graphai.run.outcome"] == "ok"
        assert run.attributes["graphai.run.output.tokens"] == 3
        assert run.attributes["graphai.run.steps"] == 2
        assert run.status.status_code is StatusCode.UNSET

    async def test_node_attributes(self, signals: Signals) -> None:
        await run_with_consumer(linear_graph(), {"q": "hi"})
        prep = signals.span("prep")
        assert dict(prep.attributes) == {
            "graphai.node.name": "prep",
            "graphai.node.kind": "node",
            "graphai.node.stream": False,
            "graphai.node.step": 0,
            "graphai.graph.name": "lin",
            "graphai.node.outcome": "ok",
        }
        llm = signals.span("chat fake-1")
        a = llm.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == "fake-1"
        assert a["graphai.node.name"] == "llm"
        assert a["graphai.node.kind"] == "llm"
        assert a["graphai.node.step"] == 1
        assert a["gen_ai.request.stream"] is True
        assert a["graphai.node.output.tokens"] == 3
        assert a["graphai.node.token_events.dropped"] == 0
        assert 0.045 <= a["gen_ai.response.time_to_first_chunk"] < 0.4
        assert 0.009 <= a["graphai.node.time_per_output_token"] < 0.1
        assert a["graphai.node.inter_token.max_gap"] >= a["graphai.node.time_per_output_token"]
        run = signals.span("invoke_workflow lin")
        assert run.attributes["graphai.run.time_to_first_token"] >= a["gen_ai.response.time_to_first_chunk"]

    async def test_caller_span_is_parent(self, signals: Signals) -> None:
        tracer = signals.tp.get_tracer("app")
        with tracer.start_as_current_span("POST /chat") as http:
            await run_with_consumer(linear_graph(), {"q": "x"})
        run = signals.span("invoke_workflow lin")
        assert run.parent is not None and run.parent.span_id == http.get_span_context().span_id

    async def test_traceparent_in_input_is_honoured(self, signals: Signals) -> None:
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        await run_with_consumer(linear_graph(), {"q": "x", "traceparent": tp})
        run = signals.span("invoke_workflow lin")
        assert format(run.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
        assert format(run.parent.span_id, "016x") == "b7ad6b7169203331"

    async def test_user_spans_inside_a_node_nest_under_it(self, signals: Signals) -> None:
        tracer = signals.tp.get_tracer("app")

        @node(start=True, end=True)
        async def work() -> dict:
            with tracer.start_as_current_span("inner"):
                pass
            return {}

        await Graph(name="g").add_node(work()).execute({})
        assert signals.span("inner").parent.span_id == signals.span("work").context.span_id

    async def test_router_choice(self, signals: Signals) -> None:
        @node(start=True)
        async def s() -> dict:
            return {}

        @router
        async def pick() -> dict:
            return {"choice": "b"}

        @node(end=True)
        async def a() -> dict:
            return {"x": "a"}

        @node(end=True)
        async def b() -> dict:
            return {"x": "b"}

        g = Graph(name="r")
        for n in (s, pick, a, b):
            g.add_node(n())
        g.add_router([s], pick, [a, b])
        await g.execute({})
        span = signals.span("pick")
        assert span.attributes["graphai.node.kind"] == "router"
        assert span.attributes["graphai.router.choice"] == "b"
        assert [x.name for x in signals.spans()].count("a") == 0

    async def test_parallel_join_links_and_wait(self, signals: Signals) -> None:
        @node(start=True)
        async def s() -> dict:
            return {}

        @node(kind="tool")
        async def fast() -> dict:
            await asyncio.sleep(0.01)
            return {"f": 1}

        @node(kind="tool")
        async def slow() -> dict:
            await asyncio.sleep(0.12)
            return {"s": 1}

        @node(end=True, kind="agent")
        async def merge(f: int, s: int) -> dict:
            return {"sum": f + s}

        g = Graph(name="pj")
        for n in (s, fast, slow, merge):
            g.add_node(n())
        g.add_parallel(s, [fast, slow]).add_join([fast, slow], merge)
        assert (await g.execute({}))["sum"] == 2
        run = signals.span("invoke_workflow pj")
        for name in ("s", "execute_tool fast", "execute_tool slow", "invoke_agent merge"):
            assert signals.span(name).parent.span_id == run.context.span_id
        join = signals.span("invoke_agent merge")
        linked = {link.context.span_id for link in join.links}
        assert linked == {
            signals.span("execute_tool fast").context.span_id,
            signals.span("execute_tool slow").context.span_id,
        }
        assert 0.08 <= join.attributes["graphai.join.wait"] < 0.5
        assert join.attributes["gen_ai.agent.name"] == "merge"
        assert signals.span("execute_tool fast").attributes["gen_ai.tool.type"] == "function"

    @pytest.mark.parametrize("wait", [True, False])
    async def test_branch_spans_are_children_of_the_run(self, signals: Signals, wait: bool) -> None:
        @node(start=True)
        async def work() -> dict:
            return {"w": 1}

        @node(stream=True)
        async def audit(callback) -> dict:
            await asyncio.sleep(0.02)
            await callback.acall("logged")
            return {"audited": True}

        @node(end=True)
        async def fin() -> dict:
            return {}

        g = Graph(name="br")
        for n in (work, audit, fin):
            g.add_node(n())
        g.add_edge(work, fin).add_branch(work, audit, wait=wait)
        _, toks = await run_with_consumer(g, {})
        assert "logged" in toks and toks[-1] == "<graphai:END:>"
        run = signals.span("invoke_workflow br")
        assert signals.span("audit").parent.span_id == run.context.span_id
        assert signals.span("audit").end_time <= run.end_time


class TestTokenEvents:
    """first_token exactly once; token events capped (default 100) and counted when dropped."""

    @staticmethod
    def streamer(n: int) -> Graph:
        @node(start=True, end=True, stream=True)
        async def gen(callback) -> dict:
            for i in range(n):
                await callback.acall(f"t{i}")
            return {}

        return Graph(name="ev").add_node(gen())

    async def test_capped_default(self, signals: Signals) -> None:
        await run_with_consumer(self.streamer(250), {})
        span = signals.span("gen")
        events = [e for e in span.events]
        assert [e.name for e in events].count("graphai.node.first_token") == 1
        assert events[0].name == "graphai.node.first_token"
        assert dict(events[0].attributes) == {"graphai.token.index": 0}
        tok = [e for e in events if e.name == "graphai.token"]
        assert len(tok) == 100
        assert [e.attributes["graphai.token.index"] for e in tok] == list(range(100))
        assert tok[5].attributes["graphai.token.size"] == 2
        assert span.attributes["graphai.node.token_events.dropped"] == 150
        assert span.dropped_events == 0

    @pytest.mark.parametrize(
        ("policy", "count", "indexes_head"),
        [("off", 0, []), ("all", 250, [0, 1, 2]), ("sampled", 35, [0, 1, 2])],
    )
    async def test_policies(self, policy: str, count: int, indexes_head: list[int]) -> None:
        s = make_signals(env.Settings(token_events=policy))
        try:
            await run_with_consumer(self.streamer(250), {})
            span = s.span("gen")
            tok = [e.attributes["graphai.token.index"] for e in span.events if e.name == "graphai.token"]
            first = [e for e in span.events if e.name == "graphai.node.first_token"]
            if policy == "all":
                # every token asked for: the SDK keeps the newest 128 events and counts the rest
                assert span.attributes["graphai.node.token_events.dropped"] == 0
                assert len(span.events) == 128 and span.dropped_events == 251 - 128
                assert tok[-1] == 249
            else:
                assert len(first) == 1
                assert len(tok) == count
                assert tok[: len(indexes_head)] == indexes_head
                assert span.attributes["graphai.node.token_events.dropped"] == 250 - count
            if policy == "sampled":
                assert tok == [*range(32), 64, 128, 192]
        finally:
            s.close()

    async def test_no_content_by_default(self, signals: Signals) -> None:
        await run_with_consumer(linear_graph(), {"q": "secret-input"})
        for s in signals.spans():
            blob = repr(dict(s.attributes)) + repr([dict(e.attributes) for e in s.events])
            assert "secret" not in blob.lower()
            assert "abbccc" not in blob and "graphai.token.text" not in blob

    async def test_content_capture_truncates(self) -> None:
        s = make_signals(env.Settings(capture_content=True, capture_max_chars=8))
        try:
            await run_with_consumer(linear_graph(), {"q": "secret-input-that-is-long"})
            llm = s.span("chat fake-1")
            texts = [e.attributes["graphai.token.text"] for e in llm.events if e.name == "graphai.token"]
            assert texts == ["a", "bb", "ccc"]
            assert llm.attributes["graphai.node.input"] == '{"q": "S…'
            assert llm.attributes["graphai.node.output"] == '{"answer…'
            run = s.span("invoke_workflow lin")
            assert run.attributes["gen_ai.input.messages"].endswith("…")
        finally:
            s.close()


class TestStatus:
    """Errors: ERROR + error.type + exception event. Cancellation: outcome cancelled, UNSET."""

    async def test_error(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def boom(callback) -> dict:
            await callback.acall("x")
            raise KeyError("nope")

        cb = Callback()
        g = Graph(name="err").add_node(boom())
        consumer = asyncio.ensure_future(asyncio.wait_for(_drain(cb), 5))
        with pytest.raises(KeyError):
            await g.execute({}, callback=cb)
        toks = await consumer
        assert toks == ["<graphai:boom:start:>", "<graphai:boom:>", "x", "<graphai:boom:end:>", "<graphai:END:>"]
        span = signals.span("boom")
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "KeyError"
        assert span.attributes["graphai.node.outcome"] == "error"
        assert [e.name for e in span.events][-1] == "exception"
        run = signals.span("invoke_workflow err")
        assert run.attributes["graphai.run.outcome"] == "error"
        assert run.attributes["error.type"] == "KeyError"
        assert run.status.status_code is StatusCode.ERROR

    async def test_cancelled(self, signals: Signals) -> None:
        started = asyncio.Event()

        @node(start=True, end=True, stream=True)
        async def hang(callback) -> dict:
            await callback.acall("x")
            started.set()
            await asyncio.sleep(30)
            return {}

        cb = Callback()
        task = asyncio.ensure_future(Graph(name="c").add_node(hang()).execute({}, callback=cb))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await asyncio.wait_for(_drain(cb), 5))[-2:] == ["<graphai:hang:end:>", "<graphai:END:>"]
        span = signals.span("hang")
        assert span.attributes["graphai.node.outcome"] == "cancelled"
        assert span.status.status_code is StatusCode.UNSET
        assert "error.type" not in span.attributes
        assert signals.span("invoke_workflow c").attributes["graphai.run.outcome"] == "cancelled"


async def _drain(cb: Callback) -> list:
    return [t async for t in cb.aiter()]


class TestStandaloneCallback:
    """start_node/end_node on a Callback used outside a graph yield a span under the current one."""

    async def test_standalone_span(self, signals: Signals) -> None:
        cb = Callback()
        tracer = signals.tp.get_tracer("app")
        with tracer.start_as_current_span("handler") as parent:
            await cb.start_node("n")
            await cb.acall("hello")
            await cb.end_node("n")
            await cb.close()
        assert await asyncio.wait_for(_drain(cb), 5) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "hello",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]
        span = signals.span("n")
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.attributes["graphai.node.output.tokens"] == 1
        assert span.attributes["graphai.node.outcome"] == "ok"

    async def test_dropped_callback_ends_open_standalone_spans(self, signals: Signals) -> None:
        import gc

        import graphai.telemetry as t

        cb = Callback()
        await cb.start_node("orphan")
        await cb.acall("x")
        assert [s["node"] for s in t.active_streams()] == ["orphan"]
        del cb
        gc.collect()
        assert t.active_streams() == []
        span = signals.span("orphan")
        assert span.attributes["graphai.node.outcome"] == "cancelled"
        assert span.attributes["graphai.node.output.tokens"] == 1


class TestOff:
    """GRAPHAI_TELEMETRY=off: no spans; API only (no SDK): nothing recorded, nothing breaks."""

    async def test_env_off(self, monkeypatch: pytest.MonkeyPatch, signals: Signals) -> None:
        import graphai.telemetry as t

        monkeypatch.setenv("GRAPHAI_TELEMETRY", "off")
        assert t.instrument(tracer_provider=signals.tp, meter_provider=signals.mp) is None
        assert not t.is_instrumented()
        await run_with_consumer(linear_graph(), {"q": "x"})
        assert signals.spans() == []

    async def test_api_only_global_noop(self) -> None:
        import graphai.telemetry as t

        t.instrument()  # global providers: proxies, no SDK
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        res, toks = await run_with_consumer(linear_graph(), {"q": "x"})
        assert res["len"] == 6 and toks[-1] == "<graphai:END:>"


class TestBrokenSdk:
    """A span processor that raises changes neither the result nor the token stream."""

    async def test_raising_processor(self, caplog) -> None:
        import structlog
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

        import graphai.telemetry as t

        class Exploding(SpanProcessor):
            def on_start(self, span, parent_context=None) -> None:  # type: ignore[no-untyped-def]
                raise RuntimeError("processor on_start")

            def on_end(self, span) -> None:  # type: ignore[no-untyped-def]
                raise RuntimeError("processor on_end")

        from graphai.telemetry import _guard

        structlog.reset_defaults()
        _guard._logged.clear()  # logged at most once a minute per place
        tp = TracerProvider()
        tp.add_span_processor(Exploding())
        t.instrument(tracer_provider=tp)
        try:
            with caplog.at_level("WARNING", logger="graphai"):
                res, toks = await run_with_consumer(linear_graph(), {"q": "hi"})
        finally:
            t.instrument()
            tp.shutdown()
        assert res == {"q": "HI", "answer": "abbccc", "len": 6}
        assert toks == [
            "<graphai:llm:start:>",
            "<graphai:llm:>",
            "a",
            "bb",
            "ccc",
            "<graphai:llm:end:>",
            "<graphai:END:>",
        ]
        assert t.active_streams() == []
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        # the run span could not start: the run goes on without telemetry, reported once
        assert msgs == ["telemetry.internal_error where='run.start' error_type='RuntimeError'"]
