"""Metrics of docs/telemetry.md: the node, graph and GenAI client histograms with their names,
attributes, values and buckets, the sampled delivery delay, and the run-level exemplars that
point from a histogram to the run's trace."""

from __future__ import annotations

import asyncio

from graphai import Callback, Graph, node
from graphai.telemetry import names as N
from tests._otel import Signals


def graph(name: str = "m", tokens: int = 5, gap: float = 0.01, first: float = 0.05, fail: bool = False) -> Graph:
    @node(start=True)
    async def prep() -> dict:
        return {}

    @node(stream=True, kind="llm", model="m-1")
    async def gen(callback) -> dict:
        await asyncio.sleep(first)
        for i in range(tokens):
            if i:
                await asyncio.sleep(gap)
            await callback.acall(f"w{i} ")
        if fail:
            raise RuntimeError("model failed")
        return {"n": tokens}

    @node(end=True)
    async def fin() -> dict:
        return {}

    return Graph(name=name).add_node(prep()).add_node(gen()).add_node(fin()).add_edge(prep, gen).add_edge(gen, fin)


async def run(g: Graph, cb: Callback | None = None) -> list:
    cb = cb or Callback()

    async def consume() -> list:
        return [t async for t in cb.aiter()]

    results = await asyncio.wait_for(asyncio.gather(g.execute({}, callback=cb), consume(), return_exceptions=True), 10)
    return results


class TestNodeMetrics:
    """Recorded once per node run with the contract's attributes."""

    async def test_duration_and_streaming_histograms(self, signals: Signals) -> None:
        await run(graph())
        p = signals.point(N.NODE_DURATION, graphai__node__name="gen")
        assert dict(p.attributes) == {
            "graphai.graph.name": "m",
            "graphai.node.name": "gen",
            "graphai.node.kind": "llm",
            "graphai.node.outcome": "ok",
        }
        assert p.count == 1 and 0.09 <= p.sum < 0.5
        assert list(p.explicit_bounds) == list(N.DURATION_BUCKETS)
        assert signals.point(N.NODE_DURATION, graphai__node__name="prep").count == 1
        ttft = signals.point(N.NODE_TTFT, graphai__node__name="gen")
        assert dict(ttft.attributes) == {"graphai.graph.name": "m", "graphai.node.name": "gen"}
        assert ttft.count == 1 and 0.045 <= ttft.sum < 0.4
        assert list(ttft.explicit_bounds) == list(N.TTFT_BUCKETS)
        tpot = signals.point(N.NODE_TPOT_METRIC)
        assert tpot.count == 1 and 0.009 <= tpot.sum < 0.1
        assert list(tpot.explicit_bounds) == list(N.GAP_BUCKETS)
        gap = signals.point(N.NODE_MAX_GAP_METRIC)
        assert gap.count == 1 and gap.sum >= tpot.sum
        rate = signals.point(N.NODE_TOKEN_RATE)
        assert rate.count == 1 and 10 <= rate.sum <= 101  # 4 tokens after the first, >= 40 ms
        assert list(rate.explicit_bounds) == list(N.TOKEN_RATE_BUCKETS)
        assert signals.point(N.NODE_TOKENS).value == 5
        # non-streaming nodes record no streaming metrics
        assert {p.attributes["graphai.node.name"] for p in signals.points(N.NODE_TOKENS)} == {"gen"}

    async def test_graph_metrics(self, signals: Signals) -> None:
        await run(graph())
        d = signals.point(N.GRAPH_DURATION)
        assert dict(d.attributes) == {"graphai.graph.name": "m", "graphai.run.outcome": "ok"}
        assert d.count == 1
        t = signals.point(N.GRAPH_TTFT)
        assert dict(t.attributes) == {"graphai.graph.name": "m"} and 0.045 <= t.sum < 0.3

    async def test_error_outcome_and_type(self, signals: Signals) -> None:
        res = await run(graph(fail=True))
        assert isinstance(res[0], RuntimeError)
        p = signals.point(N.NODE_DURATION, graphai__node__name="gen")
        assert p.attributes["graphai.node.outcome"] == "error"
        assert p.attributes["error.type"] == "RuntimeError"
        g = signals.point(N.GRAPH_DURATION)
        assert g.attributes["graphai.run.outcome"] == "error" and g.attributes["error.type"] == "RuntimeError"
        assert signals.point(N.NODE_TOKENS).value == 5

    async def test_genai_client_metrics_for_llm_nodes(self, signals: Signals) -> None:
        await run(graph())
        for name in (N.GENAI_OPERATION_DURATION, N.GENAI_TTFC, N.GENAI_TPOC):
            p = signals.point(name)
            assert dict(p.attributes) == {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1"}
            assert p.count == 1

    async def test_delivery_delay_sampled(self, signals: Signals) -> None:
        await run(graph(tokens=200, gap=0, first=0))
        p = signals.point(N.DELIVERY_DELAY)
        assert dict(p.attributes) == {"graphai.graph.name": "m"}
        assert p.count == 1  # token 1 of 200: one sample in 256 (the first included)
        assert p.sum >= 0


class TestExemplars:
    """Run-level histograms carry the run's trace as an exemplar (OTLP path to dashboards)."""

    async def test_graph_duration_exemplar_is_the_run_span(self, signals: Signals) -> None:
        await run(graph())
        run_span = signals.span("invoke_workflow m")
        # one collection: the SDK hands out each exemplar once (a collection resets reservoirs)
        data = signals.reader.get_metrics_data()
        points = {
            m.name: m.data.data_points[0]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert points[N.NODE_DURATION].exemplars == []  # node metrics are recorded outside spans
        for name in (N.GRAPH_DURATION, N.GRAPH_TTFT):
            ex = points[name].exemplars
            assert len(ex) == 1, name
            assert {e.trace_id for e in ex} == {run_span.context.trace_id}
            assert {e.span_id for e in ex} == {run_span.context.span_id}
