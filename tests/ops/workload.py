"""
A streaming graph run in a loop, exporting graphai's metrics on ``/metrics`` for the live
Prometheus tests (tests/ops/test_live_prometheus.py).

    python tests/ops/workload.py --port 9464 --mode healthy|slow|stall --seconds 60

Graph ``workload``: ``generate`` (an ``llm`` streaming node) -> ``postprocess`` (a ``tool``).
Modes:
  healthy  20 tokens about 2 ms apart (hundreds of tokens/s, first token within ~10 ms)
  slow     6 tokens 0.5 s apart (~2 tokens/s): GraphaiStreamingThroughputLow
  stall    a first token, then silence for --stall-s, then 5 quick tokens (set
           GRAPHAI_STALL_AFTER_S below --stall-s): GraphaiStreamStalled
--fail-every N makes every Nth run's ``postprocess`` raise ``ValueError`` (error panels);
--overflow-nodes N runs, once, a graph of N extra node names (with a low
GRAPHAI_METRICS_LABEL_LIMIT this exercises graphai_telemetry_label_overflow_total);
--otlp-down PORT exports traces over OTLP/HTTP to 127.0.0.1:PORT, where nothing listens
(graphai_telemetry_export_failures_total, GraphaiTelemetryExportFailing).
Each loop consumes its stream like a real client (so callback delivery delay is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node

GRAPH_NAME = "workload"
STREAM_NODE = "generate"
SERVICE_NAME = "workload"

# mode -> (first token delay s, tokens, gap s)
MODES = {"healthy": (0.01, 20, 0.002), "slow": (0.01, 6, 0.5), "stall": (0.01, 6, 0.01)}


def build_graph(mode: str, stall_s: float, fail_every: int) -> Graph:
    first_delay, n_tokens, gap = MODES[mode]
    runs = {"n": 0}

    @node(start=True, stream=True, kind="llm", model="fake", name=STREAM_NODE)
    async def generate(callback: Callback, prompt: str = "") -> dict[str, Any]:
        await asyncio.sleep(first_delay)
        text = []
        for i in range(n_tokens):
            if i == 1 and mode == "stall":
                await asyncio.sleep(stall_s)
            elif i:
                await asyncio.sleep(gap)
            tok = f"t{i} "
            text.append(tok)
            await callback.acall(tok)
        return {"text": "".join(text)}

    @node(end=True, kind="tool", name="postprocess")
    async def postprocess(text: str) -> dict[str, Any]:
        runs["n"] += 1
        if fail_every and runs["n"] % fail_every == 0:
            raise ValueError("injected failure (--fail-every)")
        return {"length": len(text)}

    g = Graph(name=GRAPH_NAME)
    g.add_node(generate).add_node(postprocess).add_edge(generate, postprocess)
    return g.compile()


def build_overflow_graph(n: int) -> Graph:
    g = Graph(name=f"{GRAPH_NAME}-overflow", max_steps=n + 1)
    prev = None
    for i in range(n):

        async def step() -> dict[str, Any]:
            return {}

        nd = node(step, start=i == 0, end=i == n - 1, name=f"extra_{i}")
        g.add_node(nd)
        if prev is not None:
            g.add_edge(prev, nd)
        prev = nd
    return g.compile()


async def run_once(graph: Graph) -> None:
    callback = Callback()

    async def consume() -> None:
        async for _ in callback.aiter():
            pass

    results = await asyncio.gather(
        graph.execute({"prompt": "hello"}, callback=callback), consume(), return_exceptions=True
    )
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, ValueError):
            raise r


async def main_async(args: argparse.Namespace) -> None:
    graph = build_graph(args.mode, args.stall_s, args.fail_every)
    await run_once(graph)  # the workload's names are registered before any overflow names
    if args.overflow_nodes:
        await build_overflow_graph(args.overflow_nodes).execute({})
    deadline = time.monotonic() + args.seconds

    async def loop() -> None:
        while time.monotonic() < deadline:
            await run_once(graph)

    await asyncio.gather(*(loop() for _ in range(args.concurrency)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="/metrics on 127.0.0.1:PORT")
    ap.add_argument("--mode", choices=sorted(MODES), default="healthy")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--stall-s", type=float, default=3.0)
    ap.add_argument("--fail-every", type=int, default=0)
    ap.add_argument("--overflow-nodes", type=int, default=0)
    ap.add_argument("--otlp-down", type=int, default=0, metavar="PORT")
    args = ap.parse_args(argv)
    if args.otlp_down:  # traces only: metrics stay on /metrics alone
        os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"http://127.0.0.1:{args.otlp_down}/v1/traces"
        os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    handle = telemetry.configure(prometheus_addr=f"127.0.0.1:{args.port}", service_name=SERVICE_NAME)
    print(f"workload: mode={args.mode} metrics on 127.0.0.1:{args.port}", flush=True)
    try:
        asyncio.run(main_async(args))
    finally:
        handle.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
