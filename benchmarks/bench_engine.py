"""
Engine benchmarks, run unchanged against ours and upstream graphai-lib 0.0.12 (by ``run.py``).

Method as in the upstream reference (section 4): ``time.perf_counter``, one untimed warmup,
median of the timed repeats, a full GC before each.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from time import perf_counter
from typing import Any

# the harness sits next to this file; this directory holds no `graphai`, so adding it cannot
# shadow the implementation under test (run.py checks graphai.__file__ anyway)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import Context, Result, benchmark, main, measure, median, metric, stream_once

from graphai import Graph, node

STREAM_TOKENS = 100_000
STREAM_TOKENS_QUICK = 20_000


# -- streaming -------------------------------------------------------------------------------
def _stream_graph(interleave: bool) -> Graph:
    if interleave:

        async def produce(n: int, callback: Any) -> dict[str, Any]:
            """Emit ``n`` tokens, yielding to the loop after each."""
            sleep = asyncio.sleep
            for _ in range(n):
                await callback.acall("tok")
                await sleep(0)
            return {"done": n}

    else:

        async def produce(n: int, callback: Any) -> dict[str, Any]:
            """Emit ``n`` tokens without yielding."""
            for _ in range(n):
                await callback.acall("tok")
            return {"done": n}

    g = Graph(max_steps=10)
    g.add_node(node(produce, start=True, end=True, stream=True))
    g.compile()
    return g


async def _stream_bench(ctx: Context, interleave: bool) -> Result:
    n = ctx.size(STREAM_TOKENS, STREAM_TOKENS_QUICK)
    g = _stream_graph(interleave)
    seen: list[int] = []
    samples = await measure(lambda: stream_once(g, n, seen), ctx.repeats, ctx.warmup)
    med = median(samples)
    # both implementations deliver n tokens + start, id and end markers of the node + END
    if set(seen) != {n + 4}:
        raise AssertionError(f"consumer received {sorted(set(seen))} items, expected {n + 4}")
    return {
        "tokens_per_s": metric(n / med, "tokens/s", "higher", target="ratio>=2.0", samples=samples),
        "info": {"tokens": n, "median_s": med, "items_received": sorted(set(seen))},
    }


@benchmark(
    "stream_plain",
    "one start+end stream node, 100k `await callback.acall('tok')`, consumer drains "
    "aiter() concurrently; execute start -> consumer saw END",
)
async def stream_plain(ctx: Context) -> Result:
    return await _stream_bench(ctx, interleave=False)


@benchmark(
    "stream_interleaved", "as stream_plain, producer does `await asyncio.sleep(0)` after each token"
)
async def stream_interleaved(ctx: Context) -> Result:
    return await _stream_bench(ctx, interleave=True)


@benchmark(
    "queue_baseline",
    "reference, no graphai: 100k put_nowait into asyncio.Queue + concurrent get() "
    "consumer (same on both interpreters: checks they are equally fast)",
)
async def queue_baseline(ctx: Context) -> Result:
    n = ctx.size(STREAM_TOKENS, STREAM_TOKENS_QUICK)

    async def once() -> float:
        q: asyncio.Queue[str | None] = asyncio.Queue()

        async def consume() -> float:
            while await q.get() is not None:
                pass
            return perf_counter()

        consumer = asyncio.ensure_future(consume())
        t0 = perf_counter()
        await asyncio.sleep(0)  # like execute(): the consumer gets to start waiting
        for _ in range(n):
            q.put_nowait("tok")
        q.put_nowait(None)
        return await consumer - t0

    samples = await measure(once, ctx.repeats, ctx.warmup)
    return {"tokens_per_s": metric(n / median(samples), "tokens/s", "higher", samples=samples)}


@benchmark(
    "interleaved_floor",
    "reference, no graphai: the stream_interleaved shape with the cheapest consumer that "
    "sees every token (drains a list, then `sleep(0)`; no future, no async generator): "
    "the event-loop floor for one consumer step per token",
)
async def interleaved_floor(ctx: Context) -> Result:
    n = ctx.size(STREAM_TOKENS, STREAM_TOKENS_QUICK)

    async def once() -> float:
        items: list[str | None] = []
        sleep = asyncio.sleep

        async def consume() -> float:
            while True:
                while items:
                    if items.pop() is None:
                        return perf_counter()
                await sleep(0)

        consumer = asyncio.ensure_future(consume())
        t0 = perf_counter()
        await sleep(0)
        for _ in range(n):
            items.append("tok")
            await sleep(0)
        items.append(None)
        return await consumer - t0

    samples = await measure(once, ctx.repeats, ctx.warmup)
    return {"tokens_per_s": metric(n / median(samples), "tokens/s", "higher", samples=samples)}


# -- per-node overhead -----------------------------------------------------------------------
def _chain(n: int) -> tuple[Graph, list[Any]]:
    """A linear graph of ``n`` trivial async nodes ``x -> {"x": x + 1}`` and the raw functions."""
    fns = []
    for i in range(n):

        async def inc(x: int) -> dict[str, Any]:
            """Add one."""
            return {"x": x + 1}

        inc.__name__ = inc.__qualname__ = f"n{i}"
        fns.append(inc)
    g = Graph(max_steps=n + 10)
    nodes = [node(f, start=(i == 0), end=(i == n - 1)) for i, f in enumerate(fns)]
    for nd in nodes:
        g.add_node(nd)
    for a, b in itertools.pairwise(nodes):
        g.add_edge(a, b)
    g.compile()
    return g, fns


async def _per_node_us(ctx: Context, n: int, execs: int) -> tuple[float, dict[str, Any]]:
    """Per-node overhead in µs: (graph time - direct-await time) / (n * execs), medians."""
    g, fns = _chain(n)

    async def graph_runs() -> float:
        t0 = perf_counter()
        for _ in range(execs):
            out = await g.execute({"x": 0})
        dt = perf_counter() - t0
        if out["x"] != n:
            raise AssertionError(f"chain of {n} returned x={out['x']}")
        return dt

    async def direct_runs() -> float:
        t0 = perf_counter()
        for _ in range(execs):
            x = 0
            for f in fns:
                x = (await f(x))["x"]
        return perf_counter() - t0

    graph_s = await measure(graph_runs, ctx.repeats, ctx.warmup)
    direct_s = await measure(direct_runs, ctx.repeats, ctx.warmup)
    calls = n * execs
    overhead_us = (median(graph_s) - median(direct_s)) / calls * 1e6
    info = {
        "nodes": n,
        "executions": execs,
        "graph_median_s": median(graph_s),
        "direct_median_s": median(direct_s),
        "gross_us_per_node": median(graph_s) / calls * 1e6,
        "direct_us_per_node": median(direct_s) / calls * 1e6,
        "graph_samples_s": graph_s,
    }
    return overhead_us, info


@benchmark(
    "node_overhead",
    "100-node linear chain of trivial async nodes, Graph(max_steps=110), 100 executions; "
    "minus direct await of the same 100 functions; µs per node",
)
async def node_overhead(ctx: Context) -> Result:
    us, info = await _per_node_us(ctx, 100, ctx.size(100, 20))
    return {
        "per_node_us": metric(us, "µs/node", "lower", target="ours<=5"),
        "per_execution_ms": metric(
            info["graph_median_s"] / info["executions"] * 1e3, "ms/exec", "lower"
        ),
        "info": info,
    }


@benchmark(
    "scaling",
    "per-node overhead for 10-, 100- and 1000-node chains (10,000 node calls per repeat); "
    "ratio 1000/10 shows whether overhead grows with graph size",
)
async def scaling(ctx: Context) -> Result:
    total = ctx.size(10_000, 2_000)
    out: Result = {}
    info: dict[str, Any] = {}
    for n in (10, 100, 1000):
        us, info[str(n)] = await _per_node_us(ctx, n, max(1, total // n))
        out[f"per_node_us_{n}"] = metric(us, "µs/node", "lower")
    out["ratio_1000_over_10"] = metric(
        out["per_node_us_1000"]["value"] / out["per_node_us_10"]["value"],
        "×",
        "lower",
        target="ours<=1.2",
    )
    out["info"] = info
    return out


if __name__ == "__main__":
    raise SystemExit(main())
