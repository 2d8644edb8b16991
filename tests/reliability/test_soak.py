"""
Soak: many concurrent runs stay isolated, and telemetry returns to rest afterwards.

- ``GRAPHAI_SOAK_RUNS`` (default 1000) concurrent runs of a streaming graph, each with its own
  Callback and consumer: every consumer receives exactly its own tokens (they carry the run
  index), in order, with one END at the end.
- ``execute_many`` over as many inputs with ``concurrency=50``: results in input order.
- One trace per run holding exactly that run's spans: 1 run span + its node spans, every node
  span a child of the run span; the run id and trace id a node sees (through the public
  structlog processors) are those of its own trace.
- The ``graphai.node.active`` gauge counts every parked run while they are in flight, and it
  and ``graphai.stream.stalled`` are back to zero afterwards; ``active_streams()`` is empty.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from graphai.telemetry.logging import add_graph_context, add_otel_context
from tests.reliability._support import RUN_SPAN, Telemetry, bounded, size_knob, until

SOAK_RUNS = size_knob("GRAPHAI_SOAK_RUNS", 1000)
TOKENS = 20
NODES = ("prep", "speak", "done")
END = "<graphai:END:>"


def _graph(gate: asyncio.Event | None = None) -> Graph:
    @node(start=True)
    async def prep(i: int) -> dict[str, Any]:
        return {"prepped": i}

    @node(stream=True)
    async def speak(i: int, callback: Any) -> dict[str, Any]:
        for k in range(TOKENS):
            await callback.acall(f"{i}:{k}")
            if k == 0 and gate is not None:
                await gate.wait()
            elif k % 4 == 3:
                await asyncio.sleep(0)
        seen = add_otel_context(None, "", add_graph_context(None, "", {}))
        return {"trace_id": seen["trace_id"], "run_id": seen["graphai.run.id"]}

    @node(end=True)
    async def done(prepped: int) -> dict[str, Any]:
        return {"done": prepped}

    g = Graph()
    for n in (prep, speak, done):
        g.add_node(n)
    return g.add_edge(prep, speak).add_edge(speak, done).compile()


def _check_traces(tel: Telemetry, results: list[dict[str, Any]]) -> None:
    """One trace per run with exactly its own spans; the ids a node saw are its trace's."""
    assert tel.counter.problems() == []
    traces: dict[int, list[Any]] = defaultdict(list)
    for s in tel.spans():
        traces[s.context.trace_id].append(s)
    assert len(traces) == len(results)
    by_trace = {f"{tid:032x}": spans for tid, spans in traces.items()}
    run_ids = set()
    for i, r in enumerate(results):
        spans = by_trace.get(r["trace_id"])
        assert spans is not None, f"run {i}: its node saw trace {r['trace_id']}, which has no spans"
        runs = [s for s in spans if s.name == RUN_SPAN]
        assert len(runs) == 1, f"run {i}: {[s.name for s in spans]}"
        run = runs[0]
        assert run.attributes["graphai.run.id"] == r["run_id"], f"run {i}"
        assert run.attributes["graphai.run.outcome"] == "ok"
        nodes = sorted(s.name for s in spans if s is not run)
        assert nodes == sorted(NODES), f"run {i}: {nodes}"
        assert all(s.parent.span_id == run.context.span_id for s in spans if s is not run)
        run_ids.add(r["run_id"])
    assert len(run_ids) == len(results)


def _check_gauges_at_rest(tel: Telemetry) -> None:
    for metric in ("graphai.node.active", "graphai.stream.stalled"):
        values = {p.attributes["graphai.node.name"]: p.value for p in tel.points(metric)}
        assert values, f"{metric} was never observed"
        assert set(values.values()) == {0}, f"{metric} not back to zero: {values}"
    assert telemetry.active_streams() == []


async def test_concurrent_runs_each_see_only_their_own_tokens(tel: Telemetry) -> None:
    gate = asyncio.Event()
    graph = _graph(gate)
    callbacks = [Callback() for _ in range(SOAK_RUNS)]

    async def consume(cb: Callback) -> list[Any]:
        return [t async for t in cb.aiter()]

    consumers = [asyncio.ensure_future(consume(cb)) for cb in callbacks]
    runs = [
        asyncio.ensure_future(graph.execute({"i": i}, callback=cb))
        for i, cb in enumerate(callbacks)
    ]
    # every run parked after its first token: all are in flight at once
    await until(lambda: len(telemetry.active_streams()) == SOAK_RUNS, timeout=20, what="all runs")
    active = {p.attributes["graphai.node.name"]: p.value for p in tel.points("graphai.node.active")}
    assert active.get("speak") == SOAK_RUNS, active
    gate.set()
    results = await bounded(asyncio.gather(*runs), timeout=30, what="the runs")
    streams = await bounded(asyncio.gather(*consumers), timeout=30, what="the consumers")

    for i, (result, items) in enumerate(zip(results, streams, strict=True)):
        assert result["i"] == i and result["done"] == i
        assert items == [
            "<graphai:speak:start:>",
            "<graphai:speak:>",
            *(f"{i}:{k}" for k in range(TOKENS)),
            "<graphai:speak:end:>",
            END,
        ], f"run {i} received a foreign or missing token"
    _check_traces(tel, results)
    _check_gauges_at_rest(tel)


async def test_execute_many_keeps_runs_apart(tel: Telemetry) -> None:
    graph = _graph()
    inputs = [{"i": i} for i in range(SOAK_RUNS)]
    results = await bounded(
        graph.execute_many(inputs, concurrency=50), timeout=30, what="execute_many"
    )
    assert [r["i"] for r in results] == list(range(SOAK_RUNS))
    assert [r["done"] for r in results] == list(range(SOAK_RUNS))
    assert all(set(r) == {"i", "prepped", "trace_id", "run_id", "done"} for r in results)
    _check_traces(tel, results)
    counts = {
        p.attributes["graphai.node.name"]: p.count for p in tel.points("graphai.node.duration")
    }
    assert counts == dict.fromkeys(NODES, SOAK_RUNS)
    tokens = {
        p.attributes["graphai.node.name"]: p.value for p in tel.points("graphai.node.output.tokens")
    }
    assert tokens == {"speak": SOAK_RUNS * TOKENS}
    _check_gauges_at_rest(tel)
