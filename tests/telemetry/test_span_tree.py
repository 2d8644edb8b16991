"""The span tree of docs/telemetry.md: a run span under the caller's span (or under the
``traceparent`` given in the input), one span per node under it, with the contract's names and
attributes, for routers, parallel paths and joins, and branches."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.trace import StatusCode

from graphai import Graph, node, router
from tests._otel import Signals
from tests.telemetry._support import execute_and_drain, linear_graph


class TestSpanTree:
    """Every node span is a child of the run span, which is a child of the caller's span."""

    async def test_linear_tree_and_names(self, signals: Signals) -> None:
        res, _ = await execute_and_drain(linear_graph(), {"q": "hi"})
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
        await execute_and_drain(linear_graph(), {"q": "hi"})
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
            await execute_and_drain(linear_graph(), {"q": "x"})
        run = signals.span("invoke_workflow lin")
        assert run.parent is not None and run.parent.span_id == http.get_span_context().span_id

    async def test_traceparent_in_input_is_honoured(self, signals: Signals) -> None:
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        await execute_and_drain(linear_graph(), {"q": "x", "traceparent": tp})
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
        _, toks = await execute_and_drain(g, {})
        assert "logged" in toks and toks[-1] == "<graphai:END:>"
        run = signals.span("invoke_workflow br")
        assert signals.span("audit").parent.span_id == run.context.span_id
        assert signals.span("audit").end_time <= run.end_time
