"""
A planned graphai workload for the stack tests: OTLP to a Collector, graphai's own ``/metrics``
beside it, and one JSON line per run (what the consumer saw, and the run span as exported).

    python _workload.py --otlp http://127.0.0.1:4317 --service S --metrics-port P \
        --plan fast,fast,slow,fail,... --out runs.jsonl [--concurrency 4] [--pace-s 0.1] \
        [--overflow-nodes 4] [--hold]

Graph ``stack_workload``: ``generate`` (an ``llm`` streaming node: the first token after
``first_s``, then ``TOKENS`` tokens ``GAP_S`` apart) -> ``postprocess`` (a ``tool`` that raises
``ValueError`` for a ``fail`` run). Run kinds:

  fast  first token after FAST_FIRST_S
  slow  first token after SLOW_FIRST_S, beyond the TTFT alert's threshold (dashboards/_rules.py)
  fail  like fast, then ``postprocess`` raises

Each run's line: index, kind, trace id, the run span's status, outcome and TTFT attribute (read
by a span processor on the same tracer provider), the graph's result or error, the full token
stream the consumer read, its wall time and its start and end (``time.time()``). With
``--overflow-nodes N``, after the first run, one run of a chain of N more node names (beyond
GRAPHAI_METRICS_LABEL_LIMIT they are folded into ``_OTHER``) and its line (kind ``overflow``).
stdout: ``PLAN_DONE <s>``, then with ``--hold`` (the process and its ``/metrics`` stay up,
flushed, until stdin closes) ``DONE``, and ``SHUTDOWN ok=<bool> <s>`` after the handle's
shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import graphai.telemetry as telemetry
from graphai import Callback, Graph, node
from graphai.telemetry import names as N

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dashboards"))
from _rules import PRODUCTION  # the generator's modules import each other as siblings

GRAPH_NAME = "stack_workload"
STREAM_NODE = "generate"
TOOL_NODE = "postprocess"
RUN_SPANS = 3  # the run span and one span per node
TOKENS = 8
GAP_S = 0.002
FAST_FIRST_S = 0.01
SLOW_FIRST_S = PRODUCTION.ttft.threshold_s + 0.25
FIRST_S = {"fast": FAST_FIRST_S, "slow": SLOW_FIRST_S, "fail": FAST_FIRST_S}


class RunSpans(SpanProcessor):
    """Run spans as they end, by trace id (what the exporter is handed)."""

    def __init__(self) -> None:
        self.by_trace: dict[str, ReadableSpan] = {}
        self.lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        if span.name.startswith(N.RUN_SPAN_PREFIX) and span.context is not None:
            with self.lock:
                self.by_trace[format(span.context.trace_id, "032x")] = span


def build_graph(trace_ids: dict[int, str]) -> Graph:
    @node(start=True, stream=True, kind="llm", model="fake", name=STREAM_NODE)
    async def generate(callback: Callback, i: int, kind: str) -> dict[str, Any]:
        trace_ids[i] = format(trace.get_current_span().get_span_context().trace_id, "032x")
        await asyncio.sleep(FIRST_S[kind])
        text = []
        for k in range(TOKENS):
            if k:
                await asyncio.sleep(GAP_S)
            text.append(f"t{k} ")
            await callback.acall(text[-1])
        return {"text": "".join(text), "kind": kind}

    @node(end=True, kind="tool", name=TOOL_NODE)
    async def postprocess(text: str, kind: str) -> dict[str, Any]:
        if kind == "fail":
            raise ValueError("injected failure")
        return {"length": len(text), "text": text}

    g = Graph(name=GRAPH_NAME)
    g.add_node(generate).add_node(postprocess).add_edge(generate, postprocess)
    return g.compile()


def build_overflow_graph(n: int) -> Graph:
    g = Graph(name=f"{GRAPH_NAME}_overflow", max_steps=n + 1)
    prev = None
    for k in range(n):

        async def step() -> dict[str, Any]:
            return {}

        nd = node(step, start=k == 0, end=k == n - 1, name=f"extra_{k}")
        g.add_node(nd)
        if prev is not None:
            g.add_edge(prev, nd)
        prev = nd
    return g.compile()


async def run_once(graph: Graph, i: int, kind: str) -> dict[str, Any]:
    callback = Callback()
    tokens: list[str] = []

    async def consume() -> None:
        async for tok in callback.aiter():
            tokens.append(str(tok))

    t0, t_start = time.monotonic(), time.time()
    result, _ = await asyncio.gather(
        graph.execute({"i": i, "kind": kind}, callback=callback), consume(),
        return_exceptions=True,
    )  # fmt: skip
    out: dict[str, Any] = {"i": i, "kind": kind, "wall_s": time.monotonic() - t0,
                           "t_start": t_start, "t_end": time.time(), "tokens": tokens}  # fmt: skip
    if isinstance(result, BaseException):
        if not isinstance(result, ValueError):
            raise result
        out["error"] = type(result).__name__
    else:
        out["result"] = result
    return out


def span_fields(span: ReadableSpan | None) -> dict[str, Any]:
    if span is None:
        return {"span": None}
    attrs = dict(span.attributes or {})
    return {
        "span": span.name,
        "status": span.status.status_code.name,
        "outcome": attrs.get(N.RUN_OUTCOME),
        "ttft": attrs.get(N.RUN_TTFT),
    }


async def main_async(args: argparse.Namespace, spans: RunSpans) -> None:
    trace_ids: dict[int, str] = {}
    graph = build_graph(trace_ids)
    plan = args.plan.split(",") if args.plan else []
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for item in enumerate(plan):
        queue.put_nowait(item)
    out = Path(args.out).open("a", buffering=1)

    async def one(i: int, kind: str) -> None:
        line = await run_once(graph, i, kind)
        line["trace_id"] = trace_ids[i]
        with spans.lock:
            line |= span_fields(spans.by_trace.get(trace_ids[i]))
        out.write(json.dumps(line) + "\n")

    async def worker() -> None:
        while not queue.empty():
            await one(*queue.get_nowait())
            await asyncio.sleep(args.pace_s)

    if plan:  # graph and node names registered before any overflow names
        await one(*queue.get_nowait())
    if args.overflow_nodes:
        await build_overflow_graph(args.overflow_nodes).execute({})
        with spans.lock:
            (tid,) = [t for t, s in spans.by_trace.items() if s.name.endswith("_overflow")]
        out.write(json.dumps({"i": -1, "kind": "overflow", "trace_id": tid}) + "\n")
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    out.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--otlp", required=True, help="OTLP/gRPC endpoint of the Collector")
    ap.add_argument("--service", required=True)
    ap.add_argument("--metrics-port", type=int, default=0, help="graphai's /metrics (0: none)")
    ap.add_argument("--plan", default="", help="comma-separated run kinds: fast, slow, fail")
    ap.add_argument("--out", required=True, help="JSON lines, one per run")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--pace-s", type=float, default=0.0, help="pause of a worker after a run")
    ap.add_argument("--overflow-nodes", type=int, default=0)
    ap.add_argument("--hold", action="store_true", help="stay up after the plan until stdin closes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")  # fmt: skip
    handle = telemetry.configure(
        service_name=args.service, otlp_endpoint=args.otlp, otlp_protocol="grpc", logs=False,
        prometheus_addr=f"127.0.0.1:{args.metrics_port}" if args.metrics_port else False,
    )  # fmt: skip
    spans = RunSpans()
    handle.tracer_provider.add_span_processor(spans)  # type: ignore[union-attr]
    t0 = time.monotonic()
    try:
        asyncio.run(main_async(args, spans))
        print(f"PLAN_DONE {time.monotonic() - t0:.3f}", flush=True)
        if args.hold:
            handle.force_flush(timeout_s=10)
            print("DONE", flush=True)
            sys.stdin.read()
    finally:
        t1 = time.monotonic()
        ok = handle.shutdown()
        print(f"SHUTDOWN ok={ok} {time.monotonic() - t1:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
