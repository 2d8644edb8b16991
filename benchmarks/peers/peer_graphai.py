"""
graphai peer: ours (this repository's graphai, from ``.venv``) and upstream graphai-lib 0.0.12
(from its own venv) run this same script, as they share the API. Written as graphai's docs show:
``@node`` functions, ``await callback.acall(token)`` in a ``stream=True`` node, a consumer on
``Callback.aiter()``, ``add_parallel`` + ``add_join`` for the fan-out.

With ``--telemetry on`` (ours only), ``graphai.telemetry.instrument()`` gets the shared SDK
providers; the stream node is then ``kind="llm", model="bench"`` (a ``chat bench`` span and the
GenAI metrics, like the chat-model span OpenLLMetry records for LangGraph).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import itertools
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # _timing; holds no graphai

from _timing import (
    FANOUT,
    FANOUT_TOTAL,
    Peer,
    Run,
    Telemetry,
    check_equal,
    check_tokens,
    consume_into,
    main,
    perf_counter,
    tokens,
)

from graphai import Callback, Graph, node

OURS = importlib.util.find_spec("graphai.telemetry") is not None
PEER = Peer(
    engine="ours" if OURS else "graphai-lib",
    dists=("graphai-otel", "opentelemetry-sdk") if OURS else ("graphai-lib",),
    module="graphai",
    build=lambda args: build(args),
)


def stream_graph(llm_kind: bool) -> Graph:
    extra: dict[str, Any] = {"kind": "llm", "model": "bench"} if llm_kind else {}

    async def produce(n: int, callback: Any) -> dict[str, Any]:
        """Emit ``n`` tokens."""
        for t in tokens(n):
            await callback.acall(t)
        return {"done": n}

    g = Graph(max_steps=10)
    g.add_node(node(produce, start=True, end=True, stream=True, **extra))
    g.compile()
    return g


def stream_run(g: Graph) -> Run:
    async def once(n: int) -> tuple[float, str | None]:
        cb = Callback()
        items: list[str] = []
        consumer = asyncio.ensure_future(consume_into(items, cb.aiter()))
        t0 = perf_counter()
        result = await g.execute({"n": n}, callback=cb)
        await consumer
        dt = perf_counter() - t0
        got = [t for t in items if not t.startswith("<graphai:")]  # node markers and END
        return dt, check_tokens(got, n) or check_equal("result['done']", result.get("done"), n)

    return once


def chain_graph(n: int) -> Graph:
    nodes = []
    for i in range(n):

        async def inc(x: int) -> dict[str, Any]:
            """Add one."""
            return {"x": x + 1}

        inc.__name__ = inc.__qualname__ = f"n{i}"
        nodes.append(node(inc, start=(i == 0), end=(i == n - 1)))
    g = Graph(max_steps=n + 10)
    for nd in nodes:
        g.add_node(nd)
    for a, b in itertools.pairwise(nodes):
        g.add_edge(a, b)
    g.compile()
    return g


def chain_run(g: Graph, n: int) -> Run:
    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            out = await g.execute({"x": 0})
            if out["x"] != n:
                problem = f"chain of {n} returned x={out['x']}"
        return perf_counter() - t0, problem

    return once


def fanout_graph() -> Graph:
    async def start(x: int) -> dict[str, Any]:
        """Fan out."""
        return {"x": x}

    branches = []
    for i in range(FANOUT):

        async def part(x: int, _i: int = i) -> dict[str, Any]:
            """Contribute this branch's number."""
            return {f"v{_i}": _i}

        part.__name__ = part.__qualname__ = f"b{i}"
        branches.append(node(part))

    async def join(**parts: int) -> dict[str, Any]:
        """Sum what the branches contributed."""
        return {"total": sum(parts.values())}

    # the join names each branch's key as a parameter (v0 ... v19), as one would write it out
    join.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"v{i}", inspect.Parameter.KEYWORD_ONLY) for i in range(FANOUT)]
    )
    g = Graph(max_steps=100)
    g.add_node(node(start, start=True))
    for b in branches:
        g.add_node(b)
    g.add_node(node(join, end=True))
    g.add_parallel("start", branches)
    g.add_join(branches, "join")
    try:
        g.compile()
    except Exception as exc:  # graphai-lib 0.0.12 rejects join graphs; they run uncompiled
        PEER.facts["compile"] = f"compile() rejected the graph ({exc}); run without compile()"
    return g


def fanout_run(g: Graph) -> Run:
    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            out = await g.execute({"x": 0})
            if out.get("total") != FANOUT_TOTAL:
                problem = check_equal("total", out.get("total"), FANOUT_TOTAL)
        return perf_counter() - t0, problem

    return once


def build(args: argparse.Namespace) -> Run:
    if args.measure == "stream":
        return stream_run(stream_graph(llm_kind=args.telemetry == "on"))
    if args.measure == "chain":
        return chain_run(chain_graph(args.size), args.size)
    return fanout_run(fanout_graph())


def instrument(tel: Telemetry) -> dict[str, Any]:
    from graphai.telemetry import instrument as graphai_instrument

    graphai_instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    return {"instrumentation": "graphai.telemetry.instrument(tracer_provider, meter_provider)"}


def expected_spans(args: argparse.Namespace, executions: int) -> int:
    """One run span per execution plus one span per node run."""
    per_run: int = {"stream": 1, "chain": args.size, "fanout": FANOUT + 2}[args.measure]
    return executions * (1 + per_run)


if OURS:
    PEER.instrument = instrument
    PEER.expected_spans = expected_spans

if __name__ == "__main__":
    raise SystemExit(main(PEER))
