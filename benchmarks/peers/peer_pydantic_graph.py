"""
pydantic-graph peer, written as its docs show for 2.x: a ``GraphBuilder`` with ``@g.step``
async functions taking a ``StepContext``, edges with ``g.edge_from(a).to(b)``, ``g.build()``,
``await graph.run(inputs=..., deps=...)``.

- Stream: pydantic-graph has no token stream of its own; the usual pattern passes a channel in
  the run's ``deps`` (here an ``asyncio.Queue``): the step puts each token with
  ``put_nowait``, a consumer task reads until the ``None`` put after the run ends.
- Chain: one step per node (``node_id=f"n{i}"``), ``x -> x + 1``.
- Fan-out: a broadcast (``g.edge_from(start).to(b0, ..., b19)``) into a join
  ``g.join(reduce_sum, initial=0)``, as the "Parallel Execution" and "Joins and Reducers"
  pages show.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    FANOUT,
    FANOUT_TOTAL,
    Peer,
    Run,
    check_equal,
    check_tokens,
    main,
    perf_counter,
    tokens,
)
from pydantic_graph import GraphBuilder, StepContext, reduce_sum

PEER = Peer(
    engine="pydantic-graph",
    dists=("pydantic-graph", "pydantic"),
    module="pydantic_graph",
    build=lambda args: build(args),
)


# -- stream ----------------------------------------------------------------------------------
@dataclass
class Deps:
    tokens: asyncio.Queue[str | None]


def stream_graph() -> Any:
    g = GraphBuilder(deps_type=Deps, input_type=int, output_type=int)

    @g.step
    async def produce(ctx: StepContext[None, Deps, int]) -> int:
        queue = ctx.deps.tokens
        for t in tokens(ctx.inputs):
            queue.put_nowait(t)
        return ctx.inputs

    g.add(g.edge_from(g.start_node).to(produce), g.edge_from(produce).to(g.end_node))
    return g.build()


async def _drain(queue: asyncio.Queue[str | None], items: list[str]) -> None:
    append = items.append
    while (t := await queue.get()) is not None:
        append(t)


def stream_run() -> Run:
    graph = stream_graph()

    async def once(n: int) -> tuple[float, str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        items: list[str] = []
        consumer = asyncio.ensure_future(_drain(queue, items))
        t0 = perf_counter()
        try:
            result = await graph.run(inputs=n, deps=Deps(queue))
        finally:
            queue.put_nowait(None)
        await consumer
        dt = perf_counter() - t0
        return dt, check_tokens(items, n) or check_equal("result", result, n)

    return once


# -- chain and fan-out -----------------------------------------------------------------------
async def inc(ctx: StepContext[None, None, int]) -> int:
    return ctx.inputs + 1


def chain_graph(n: int) -> Any:
    g = GraphBuilder(input_type=int, output_type=int)
    steps = [g.step(inc, node_id=f"n{i}") for i in range(n)]
    g.add(g.edge_from(g.start_node).to(steps[0]))
    for a, b in itertools.pairwise(steps):
        g.add(g.edge_from(a).to(b))
    g.add(g.edge_from(steps[-1]).to(g.end_node))
    return g.build()


def fanout_graph() -> Any:
    g = GraphBuilder(input_type=int, output_type=int)

    @g.step
    async def start(ctx: StepContext[None, None, int]) -> int:
        return ctx.inputs

    branches = []
    for i in range(FANOUT):

        async def part(ctx: StepContext[None, None, int], _i: int = i) -> int:
            return _i

        branches.append(g.step(part, node_id=f"b{i}"))
    total = g.join(reduce_sum, initial=0)
    g.add(
        g.edge_from(g.start_node).to(start),
        g.edge_from(start).to(*branches),
        g.edge_from(*branches).to(total),
        g.edge_from(total).to(g.end_node),
    )
    return g.build()


def runs_of(graph: Any, want: int, what: str) -> Run:
    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            result = await graph.run(inputs=0)
            if result != want:
                problem = check_equal(what, result, want)
        return perf_counter() - t0, problem

    return once


def build(args: argparse.Namespace) -> Run:
    if args.measure == "stream":
        return stream_run()
    if args.measure == "chain":
        return runs_of(chain_graph(args.size), args.size, f"chain of {args.size} result")
    return runs_of(fanout_graph(), FANOUT_TOTAL, "total")


if __name__ == "__main__":
    raise SystemExit(main(PEER))
