"""
Telemetry benchmarks (ours only: upstream graphai-lib 0.0.12 has no telemetry), run by ``run.py``.

Each benchmark installs process-wide telemetry state (the engine's instrumentation seam,
providers, a ``/metrics`` server, an OTLP sink subprocess), so each runs in a process of its own
(``isolate=True``). Targets come from the telemetry issue:

- ``stream_telemetry``: streaming with full telemetry >= 1.5x upstream's plain streaming
  (``stream_plain`` without telemetry, same run; ``run.py`` computes the cross-ratio).
- ``token_cost``: per-token telemetry cost <= 0.2 us (full telemetry minus off, same process).
- ``node_cost``: per-node telemetry cost <= 1.2x the bare OpenTelemetry SDK calls it makes.
- ``api_only``: per-node overhead with the API only (no SDK) within 1 us of telemetry off.

Method as in ``bench_engine.py``: ``time.perf_counter``, warmup, medians, a full GC before each
timed run. Where two configurations are compared in one process, their runs are interleaved
(on, off, off, on, ...) so slow drift of the machine hits both alike.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import re
import select
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

# the harness sits next to this file (see bench_engine.py)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import Context, Result, benchmark, main, median, metric, stream_once

from graphai import Graph

REPO = Path(__file__).resolve().parent.parent
SINK = REPO / "tests" / "integration" / "otlp_sink.py"
STREAM_TOKENS = 100_000
STREAM_TOKENS_QUICK = 20_000
CHAIN_NODES = 100
METRIC_EXPORT_INTERVAL_MS = 1000  # OTLP metric export every second (default: 60 s)
BSP_QUEUE = 1 << 16  # node_cost's BatchSpanProcessor queue (default 2048)


# -- helpers ---------------------------------------------------------------------------------
@contextlib.contextmanager
def otlp_sink() -> Iterator[tuple[int, int]]:
    """Run ``tests/integration/otlp_sink.py`` (a real OTLP receiver) on free loopback ports;
    yields ``(grpc_port, http_port)``."""
    proc = subprocess.Popen(
        [sys.executable, str(SINK), "0", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"grpc 127\.0\.0\.1:(\d+) http 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"otlp_sink.py did not start (first line {line!r})")
        yield int(m.group(1)), int(m.group(2))
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def sink_summary(http_port: int) -> dict[str, Any]:
    """What the sink received: span names with counts and token events, metric names."""
    spans: dict[str, int] = {}
    events: dict[str, int] = {}
    for req in _http_json(f"http://127.0.0.1:{http_port}/debug/traces"):
        for rs in req.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    spans[sp["name"]] = spans.get(sp["name"], 0) + 1
                    for ev in sp.get("events", []):
                        events[ev["name"]] = events.get(ev["name"], 0) + 1
    metric_names: set[str] = set()
    exports = 0
    for req in _http_json(f"http://127.0.0.1:{http_port}/debug/metrics"):
        exports += 1
        for rm in req.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                metric_names.update(m["name"] for m in sm.get("metrics", []))
    return {
        "spans": spans,
        "span_events": events,
        "metric_exports": exports,
        "metrics": sorted(metric_names),
    }


def full_telemetry(grpc_port: int) -> tuple[Any, Any]:
    """``graphai.telemetry.configure()`` as an application would call it: SDK TracerProvider
    with a BatchSpanProcessor(OTLP gRPC span exporter), MeterProvider with a
    PeriodicExportingMetricReader(OTLP gRPC metric exporter) and a PrometheusMetricReader
    served on a free port, default token events (``capped``). Returns the handle and the
    installed instrumentation (so a benchmark can switch it off and on again without
    re-creating instruments)."""
    from graphai import telemetry

    handle = telemetry.configure(
        service_name="graphai-bench",
        otlp_endpoint=f"http://127.0.0.1:{grpc_port}",
        otlp_protocol="grpc",
        prometheus_addr="127.0.0.1:0",
        set_global=False,
        metric_export_interval_ms=METRIC_EXPORT_INTERVAL_MS,
    )
    if handle.prometheus_addr is None:
        raise RuntimeError("configure() started no /metrics endpoint")
    # the instrumentation configure() installed, as an object we can re-install: the same
    # providers, installed again before any run (so no instrument is created twice)
    instr = telemetry.instrument(
        tracer_provider=handle.tracer_provider, meter_provider=handle.meter_provider
    )
    return handle, instr


def set_instrumentation(instr: Any) -> None:
    """Re-install an instrumentation object (``None``: ``graphai.telemetry.uninstrument()``)."""
    from graphai import _hooks
    from graphai.telemetry import uninstrument

    if instr is None:
        uninstrument()
    else:
        _hooks.set_instrumentation(instr)


async def interleaved(
    configs: dict[str, Callable[[], Awaitable[float]]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    """Run each config's ``run_once`` ``warmup`` times untimed, then ``repeats`` rounds of
    all configs (order rotated each round), a full GC before each call. Samples by config."""
    names = list(configs)
    for _ in range(warmup):
        for name in names:
            gc.collect()
            await configs[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeats):
        order = names[i % len(names) :] + names[: i % len(names)]
        if (i // len(names)) % 2:
            order.reverse()
        for name in order:
            gc.collect()
            out[name].append(await configs[name]())
    return out


# -- streaming -------------------------------------------------------------------------------
def llm_stream_graph() -> Graph:
    """One streaming LLM-kind node emitting ``n`` tokens without yielding (stream_plain's
    shape, plus ``kind="llm", model="bench"``: ``chat bench`` span and GenAI metrics)."""
    from graphai import node

    async def produce(n: int, callback: Any) -> dict[str, Any]:
        """Emit ``n`` tokens."""
        for _ in range(n):
            await callback.acall("tok")
        return {"done": n}

    g = Graph(max_steps=10)
    g.add_node(node(produce, start=True, end=True, stream=True, kind="llm", model="bench"))
    g.compile()
    return g


def check_seen(seen: list[int], n: int) -> None:
    # n tokens + start, id and end markers of the node + END
    if set(seen) != {n + 4}:
        raise AssertionError(f"consumer received {sorted(set(seen))} items, expected {n + 4}")


def scrape(addr: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as r:
        text = r.read().decode()
    series = [ln for ln in text.splitlines() if ln.startswith("graphai_node_output_tokens_total")]
    return {"bytes": len(text), "graphai_node_output_tokens_total": series}


@benchmark(
    "stream_telemetry",
    "stream_plain's shape (one start+end stream node, kind=llm, 100k `await "
    "callback.acall('tok')`, consumer drains aiter()) with FULL telemetry: "
    "telemetry.configure() -> SDK spans via BatchSpanProcessor + OTLP/gRPC, metrics via "
    "PeriodicExportingMetricReader(OTLP/gRPC, 1 s) + Prometheus /metrics, to a real OTLP sink "
    "process; default (capped) token events. Compared with upstream's stream_plain (no telemetry)",
    impls=("ours",),
    isolate=True,
    upstream_baseline="stream_plain",
)
async def stream_telemetry(ctx: Context) -> Result:
    n = ctx.size(STREAM_TOKENS, STREAM_TOKENS_QUICK)
    g = llm_stream_graph()
    seen: list[int] = []
    with otlp_sink() as (grpc_port, http_port):
        handle, _instr = full_telemetry(grpc_port)
        try:
            samples = (
                await interleaved({"on": lambda: stream_once(g, n, seen)}, ctx.repeats, ctx.warmup)
            )["on"]
            prom = scrape(handle.prometheus_addr)
            flushed = handle.force_flush(10.0)
        finally:
            handle.shutdown(10.0)
        received = sink_summary(http_port)
    check_seen(seen, n)
    runs = ctx.warmup + ctx.repeats
    if received["spans"].get("chat bench") != runs:
        raise AssertionError(f"sink received {received['spans']}, expected {runs} 'chat bench'")
    if not prom["graphai_node_output_tokens_total"]:
        raise AssertionError("no graphai_node_output_tokens_total series on /metrics")
    med = median(samples)
    return {
        "tokens_per_s": metric(n / med, "tokens/s", "higher", target="ratio>=1.5", samples=samples),
        "us_per_token": metric(med / n * 1e6, "µs/token", "lower"),
        "info": {
            "tokens": n,
            "median_s": med,
            "setup": "graphai.telemetry.configure(otlp_endpoint=grpc sink, "
            "prometheus_addr='127.0.0.1:0', set_global=False, "
            f"metric_export_interval_ms={METRIC_EXPORT_INTERVAL_MS})",
            "flushed": flushed,
            "sink_received": received,
            "prometheus": prom,
        },
    }


@benchmark(
    "token_cost",
    "per-token cost of full telemetry (as stream_telemetry) = time per token with it minus "
    "time per token after graphai.telemetry.uninstrument(), same process, same graph, runs "
    "interleaved; 100k tokens; median of 11 runs each",
    impls=("ours",),
    isolate=True,
)
async def token_cost(ctx: Context) -> Result:
    n = ctx.size(STREAM_TOKENS, STREAM_TOKENS_QUICK)
    repeats = 2 * ctx.repeats + 1
    g = llm_stream_graph()
    seen: list[int] = []
    with otlp_sink() as (grpc_port, _http_port):
        handle, instr = full_telemetry(grpc_port)

        async def on() -> float:
            set_instrumentation(instr)
            return await stream_once(g, n, seen)

        async def off() -> float:
            set_instrumentation(None)
            return await stream_once(g, n, seen)

        try:
            s = await interleaved({"on": on, "off": off}, repeats, ctx.warmup)
        finally:
            set_instrumentation(instr)
            handle.shutdown(10.0)
    check_seen(seen, n)
    on_us = median(s["on"]) / n * 1e6
    off_us = median(s["off"]) / n * 1e6
    paired = median([(a - b) / n * 1e6 for a, b in zip(s["on"], s["off"], strict=True)])
    return {
        "per_token_us": metric(on_us - off_us, "µs/token", "lower", target="ours<=0.2"),
        "on_us_per_token": metric(on_us, "µs/token", "lower"),
        "off_us_per_token": metric(off_us, "µs/token", "lower"),
        "info": {
            "tokens": n,
            "repeats": repeats,
            "paired_median_us": paired,
            "on_samples_s": s["on"],
            "off_samples_s": s["off"],
        },
    }


# -- per node --------------------------------------------------------------------------------
Wrap = Callable[[Callable[..., Awaitable[dict[str, Any]]], str, int, str], Callable[..., Any]]


def _named(
    fn: Callable[..., Any], name: str, wrap: Wrap | None, step: int, role: str = "node"
) -> Callable[..., Any]:
    fn.__name__ = fn.__qualname__ = name
    if wrap is None:
        return fn
    out = wrap(fn, name, step, role)
    out.__name__ = out.__qualname__ = name
    out.__doc__ = fn.__doc__
    return out


def chain(n: int, wrap: Wrap | None = None) -> Graph:
    """A linear graph of ``n`` trivial async nodes ``x -> {"x": x + 1}`` (bench_engine's);
    ``wrap(fn, name, step, role)`` replaces each node's function (the hand-instrumented
    floor; ``role``: ``"node"``, ``"branch"`` or ``"join"``)."""
    from graphai import node

    nodes = []
    for i in range(n):

        async def inc(x: int) -> dict[str, Any]:
            """Add one."""
            return {"x": x + 1}

        nodes.append(node(_named(inc, f"n{i}", wrap, i), start=(i == 0), end=(i == n - 1)))
    g = Graph(max_steps=n + 10)
    for nd in nodes:
        g.add_node(nd)
    for a, b in itertools.pairwise(nodes):
        g.add_edge(a, b)
    g.compile()
    return g


def chain_runs(g: Graph, n: int, execs: int) -> Callable[[], Awaitable[float]]:
    return graph_runs(g, execs, n, f"chain of {n}")


def graph_runs(g: Graph, execs: int, want_x: int, what: str) -> Callable[[], Awaitable[float]]:
    """``execs`` executions of ``g`` on ``{"x": 0}``, timed; the last must return ``want_x``."""

    async def run_once() -> float:
        t0 = perf_counter()
        for _ in range(execs):
            out = await g.execute({"x": 0})
        dt = perf_counter() - t0
        if out["x"] != want_x:
            raise AssertionError(f"{what} returned x={out['x']}, expected {want_x}")
        return dt

    return run_once


def _hand_instruments(tp: Any, mp: Any, scope: str) -> tuple[Any, Any, Any]:
    """Tracer and node/graph duration histograms (graphai's bucket advice) for the
    hand-instrumented baselines."""
    from graphai.telemetry import names as N

    meter = mp.get_meter(f"graphai-bench-{scope}")
    buckets = list(N.METRICS[N.NODE_DURATION][3] or ())
    node_hist = meter.create_histogram(
        f"bench.{scope}.node.duration", unit="s", explicit_bucket_boundaries_advisory=buckets
    )
    graph_hist = meter.create_histogram(
        f"bench.{scope}.graph.duration", unit="s", explicit_bucket_boundaries_advisory=buckets
    )
    return tp.get_tracer(f"graphai-bench-{scope}"), node_hist, graph_hist


class HandInstrumented:
    """The same SDK calls as graphai's telemetry, made by hand *inside* the engine: each node's
    function, telemetry off, does start_span / attach / detach / set_attributes / end / one
    duration record around its work, under a run span opened around ``execute()``. This is what
    "instrument it yourself" costs in the same engine (same coroutines, payloads and
    garbage-collector interplay): the in-engine floor for graphai's own layer. A join's span
    links to the spans of the branches it waited for and carries the wait, as graphai's does."""

    GRAPH = "manual"

    def __init__(self, tp: Any, mp: Any) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind

        self.tracer, self.node_hist, self.graph_hist = _hand_instruments(tp, mp, "manual")
        self.run_ctx: Any = None
        self.branches: list[Any] = []  # span contexts of this run's parallel branches
        self._attach, self._detach = otel_context.attach, otel_context.detach
        self._get_current = otel_context.get_current
        self._in_context = trace.set_span_in_context
        self._internal = SpanKind.INTERNAL

    def wrap(
        self, fn: Callable[..., Awaitable[dict[str, Any]]], name: str, step: int, role: str
    ) -> Any:
        from opentelemetry.trace import Link

        from graphai.telemetry import names as N

        graph = self.GRAPH
        span_attrs = {N.NODE_NAME: name, N.NODE_KIND: "node", N.NODE_STREAM: False,
                      N.NODE_STEP: step, N.GRAPH_NAME: graph}  # fmt: skip
        metric_attrs = {N.GRAPH_NAME: graph, N.NODE_NAME: name, N.NODE_KIND: "node",
                        N.NODE_OUTCOME: "ok"}  # fmt: skip
        end_attrs = {N.NODE_OUTCOME: "ok"}
        tracer, hist, internal = self.tracer, self.node_hist, self._internal
        attach, detach, in_context = self._attach, self._detach, self._in_context
        branches = self.branches

        branch, join = role == "branch", role == "join"

        async def instrumented(x: int) -> dict[str, Any]:
            t0 = perf_counter()
            ctx = self.run_ctx
            if join:  # as graphai's: the wait among the attributes, a link per branch
                links = [Link(c) for c in branches]
                branches.clear()
                attrs = {**span_attrs, N.JOIN_WAIT: 0.0}
                span = tracer.start_span(
                    name, context=ctx, kind=internal, attributes=attrs, links=links
                )
            else:
                span = tracer.start_span(name, context=ctx, kind=internal, attributes=span_attrs)
            token = attach(in_context(span, ctx))
            out = await fn(x)
            detach(token)
            span.set_attributes(end_attrs)
            span.end()
            hist.record(perf_counter() - t0, metric_attrs)
            if branch:
                branches.append(span.get_span_context())
            return out

        return instrumented

    def runs(
        self, g: Graph, n_nodes: int, execs: int, want_x: int, what: str
    ) -> Callable[[], Awaitable[float]]:
        """``execs`` executions of ``g`` (built with :meth:`wrap`, ``n_nodes`` nodes), each
        under a run span."""
        from graphai.telemetry import names as N

        graph = self.GRAPH
        run_attrs = {N.GEN_AI_OPERATION_NAME: "invoke_workflow", N.GRAPH_NAME: graph}
        graph_attrs = {N.GRAPH_NAME: graph, N.RUN_OUTCOME: "ok"}

        async def run_once() -> float:
            t0 = perf_counter()
            for _ in range(execs):
                parent = self._get_current()
                t_run = perf_counter()
                run_span = self.tracer.start_span(
                    f"invoke_workflow {graph}", context=parent, kind=self._internal,
                    attributes=run_attrs,
                )  # fmt: skip
                self.run_ctx = self._in_context(run_span, parent)
                out = await g.execute({"x": 0})
                run_span.set_attributes({N.RUN_OUTCOME: "ok", N.RUN_STEPS: n_nodes})
                run_span.end()
                self.graph_hist.record(perf_counter() - t_run, graph_attrs)
            dt = perf_counter() - t0
            if out["x"] != want_x:
                raise AssertionError(f"hand-instrumented {what} returned x={out['x']}")
            return dt

        return run_once


class NullSpanExporter:
    """A SpanExporter that drops what it gets (counts it)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def bare_sdk_runs(tp: Any, mp: Any, graph: str, n: int, execs: int) -> Callable[[], float]:
    """The OpenTelemetry SDK calls graphai makes for one execution of an ``n``-node chain,
    without graphai: per node start_span(name, context=run ctx, kind=INTERNAL, 5 attributes),
    context attach(set_span_in_context) + detach, set_attributes({outcome}), end(), one
    node.duration histogram record (4 attributes, a cached dict per node as graphai keeps); per
    execution the run span (4 attributes; 3 at end) and one graph.duration record."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    from graphai.telemetry import names as N

    tracer, node_hist, graph_hist = _hand_instruments(tp, mp, "bare")
    names = [f"n{i}" for i in range(n)]
    node_attrs = [
        {N.GRAPH_NAME: graph, N.NODE_NAME: nm, N.NODE_KIND: "node", N.NODE_OUTCOME: "ok"}
        for nm in names
    ]
    graph_attrs = {N.GRAPH_NAME: graph, N.RUN_OUTCOME: "ok"}
    internal = SpanKind.INTERNAL
    attach, detach, get_current = otel_context.attach, otel_context.detach, otel_context.get_current
    in_context = trace.set_span_in_context

    def one_execution() -> None:
        parent = get_current()
        t_run = perf_counter()
        run_span = tracer.start_span(
            f"invoke_workflow {graph}",
            context=parent,
            kind=internal,
            attributes={
                N.GEN_AI_OPERATION_NAME: "invoke_workflow",
                N.GEN_AI_WORKFLOW_NAME: graph,
                N.GRAPH_NAME: graph,
                N.RUN_ID: "0123456789abcdef0123456789abcdef",
            },
        )
        run_ctx = in_context(run_span, parent)
        for step, name in enumerate(names):
            t0 = perf_counter()
            span = tracer.start_span(
                name,
                context=run_ctx,
                kind=internal,
                attributes={
                    N.NODE_NAME: name,
                    N.NODE_KIND: "node",
                    N.NODE_STREAM: False,
                    N.NODE_STEP: step,
                    N.GRAPH_NAME: graph,
                },
            )
            token = attach(in_context(span, run_ctx))
            detach(token)
            span.set_attributes({N.NODE_OUTCOME: "ok"})
            span.end()
            node_hist.record(perf_counter() - t0, node_attrs[step])
        run_span.set_attributes({N.RUN_OUTCOME: "ok", N.RUN_OUTPUT_TOKENS: 0, N.RUN_STEPS: n})
        run_span.end()
        graph_hist.record(perf_counter() - t_run, graph_attrs)

    def run_once() -> float:
        t0 = perf_counter()
        for _ in range(execs):
            one_execution()
        return perf_counter() - t0

    return run_once


@benchmark(
    "node_cost",
    "per-node telemetry cost on a 100-node chain, 50 executions (SDK TracerProvider + "
    "BatchSpanProcessor to a no-op exporter, MeterProvider + InMemoryMetricReader; telemetry "
    "on minus uninstrument()) versus the same SDK calls (per node, and per run amortised) "
    "made by hand: timed alone in a plain loop (ratio, reference) and inside the engine, in "
    "the nodes of an uninstrumented chain (ratio_in_engine, the target: same coroutines, "
    "payloads and garbage-collector work as graphai's); runs interleaved, median of 11",
    impls=("ours",),
    isolate=True,
)
async def node_cost(ctx: Context) -> Result:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from graphai.telemetry import instrument

    n, execs = CHAIN_NODES, ctx.size(50, 20)
    calls = n * execs
    repeats = 2 * ctx.repeats + 1
    exporter = NullSpanExporter()
    tp = TracerProvider(shutdown_on_exit=False)
    # a queue that holds a whole repeat: every span is exported, none dropped (with the default
    # 2048 the faster side would drop more spans than the slower one)
    tp.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=BSP_QUEUE)  # type: ignore[arg-type]
    )
    reader = InMemoryMetricReader()
    mp = MeterProvider([reader], shutdown_on_exit=False)
    instr = instrument(tracer_provider=tp, meter_provider=mp)
    g = chain(n)
    graph_runs = chain_runs(g, n, execs)
    bare = bare_sdk_runs(tp, mp, g.name, n, execs)
    hand = HandInstrumented(tp, mp)
    manual_runs = hand.runs(chain(n, hand.wrap), n, execs, n, f"chain of {n}")

    async def manual() -> float:
        set_instrumentation(None)
        return await manual_runs()

    async def on() -> float:
        set_instrumentation(instr)
        return await graph_runs()

    async def off() -> float:
        set_instrumentation(None)
        return await graph_runs()

    async def bare_sdk() -> float:
        set_instrumentation(None)
        return bare()

    try:
        s = await interleaved(
            {"on": on, "off": off, "bare": bare_sdk, "manual": manual}, repeats, ctx.warmup
        )
        tp.force_flush()
        expected_spans = (ctx.warmup + repeats) * execs * (n + 1) * 3  # graphai, bare, manual
        exported = exporter.spans
        points = sum(
            len(m.data.data_points)
            for rm in (reader.get_metrics_data() or _Empty()).resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
    finally:
        set_instrumentation(instr)
        tp.shutdown()
        mp.shutdown()
    if exported != expected_spans:
        raise AssertionError(f"{exported} spans exported, expected {expected_spans}")
    cost_us = (median(s["on"]) - median(s["off"])) / calls * 1e6
    bare_us = median(s["bare"]) / calls * 1e6
    manual_us = (median(s["manual"]) - median(s["off"])) / calls * 1e6
    return {
        "telemetry_us": metric(cost_us, "µs/node", "lower"),
        "bare_sdk_us": metric(bare_us, "µs/node", "lower"),
        "ratio": metric(cost_us / bare_us, "×", "lower"),
        "manual_in_engine_us": metric(manual_us, "µs/node", "lower"),
        "ratio_in_engine": metric(cost_us / manual_us, "×", "lower", target="ours<=1.15"),
        "info": {
            "nodes": n,
            "executions": execs,
            "repeats": repeats,
            "on_us_per_node": median(s["on"]) / calls * 1e6,
            "off_us_per_node": median(s["off"]) / calls * 1e6,
            "spans_exported": exported,
            "spans_expected": expected_spans,
            "metric_points": points,
            "samples_s": s,
        },
    }


class _Empty:
    resource_metrics: tuple[Any, ...] = ()


def fanout(width: int, wrap: Wrap | None = None) -> Graph:
    """start -> ``width`` parallel nodes -> join -> end (``x`` summed at the join);
    ``wrap`` as for :func:`chain`."""
    from graphai import node

    async def src(x: int) -> dict[str, Any]:
        """Fan out."""
        return {"x": x}

    branches = []
    for i in range(width):

        async def leaf(x: int) -> dict[str, Any]:
            """One branch."""
            return {"x": x}

        branches.append(node(_named(leaf, f"b{i}", wrap, 1, "branch")))

    async def join(x: int) -> dict[str, Any]:
        """Join."""
        return {"x": x + 1}

    start = node(_named(src, "src", wrap, 0), start=True)
    end = node(_named(join, "join", wrap, 2, "join"), end=True)
    g = Graph(max_steps=width + 10)
    for nd in (start, *branches, end):
        g.add_node(nd)
    g.add_parallel(start, branches)
    g.add_join(branches, end)
    g.compile()
    return g


SHAPES = (("chain_10", 10, 500), ("chain_100", 100, 50), ("chain_1000", 1000, 5), ("fanout_20", 22, 200))


@benchmark(
    "telemetry_shapes",
    "per-node cost of full telemetry (SDK TracerProvider + BatchSpanProcessor to a no-op "
    "exporter, MeterProvider + InMemoryMetricReader) on chains of 10, 100 and 1000 nodes and "
    "on a fan-out start -> 20 parallel -> join (22 nodes): gross µs per node with telemetry, "
    "telemetry on minus off, and two floors with the ratio to each: the same SDK calls per "
    "node and per run alone in a plain loop (ratio), and made by hand inside the nodes of the "
    "same graph with graphai's telemetry off (ratio_in_engine, the target); shapes and "
    "configurations interleaved, median of 11",
    impls=("ours",),
    isolate=True,
)
async def telemetry_shapes(ctx: Context) -> Result:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from graphai.telemetry import instrument

    repeats = 2 * ctx.repeats + 1
    exporter = NullSpanExporter()
    tp = TracerProvider(shutdown_on_exit=False)
    tp.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=BSP_QUEUE)  # type: ignore[arg-type]
    )
    mp = MeterProvider([InMemoryMetricReader()], shutdown_on_exit=False)
    instr = instrument(tracer_provider=tp, meter_provider=mp)
    configs: dict[str, Callable[[], Awaitable[float]]] = {}
    calls: dict[str, int] = {}
    hand = HandInstrumented(tp, mp)
    for name, nodes, full_execs in SHAPES:
        execs = ctx.size(full_execs, max(1, full_execs // 10))
        calls[name] = nodes * execs
        if name.startswith("chain"):
            g = chain(nodes)
            runs = chain_runs(g, nodes, execs)
        else:
            g = fanout(nodes - 2)
            runs = graph_runs(g, execs, 1, f"fan-out of {nodes - 2}")
        bare = bare_sdk_runs(tp, mp, g.name, nodes, execs)
        if name.startswith("chain"):
            hand_g = chain(nodes, hand.wrap)
            hand_runs = hand.runs(hand_g, nodes, execs, nodes, f"chain of {nodes}")
        else:
            hand_g = fanout(nodes - 2, hand.wrap)
            hand_runs = hand.runs(hand_g, nodes, execs, 1, f"fan-out of {nodes - 2}")

        def manual(runs: Callable[[], Awaitable[float]] = hand_runs) -> Awaitable[float]:
            set_instrumentation(None)
            return runs()

        def on(runs: Callable[[], Awaitable[float]] = runs) -> Awaitable[float]:
            set_instrumentation(instr)
            return runs()

        def off(runs: Callable[[], Awaitable[float]] = runs) -> Awaitable[float]:
            set_instrumentation(None)
            return runs()

        async def floor(bare: Callable[[], float] = bare) -> float:
            set_instrumentation(None)
            return bare()

        configs[f"{name}.on"], configs[f"{name}.off"], configs[f"{name}.floor"] = on, off, floor
        configs[f"{name}.manual"] = manual
    try:
        s = await interleaved(configs, repeats, ctx.warmup)
    finally:
        set_instrumentation(instr)
        tp.shutdown()
        mp.shutdown()
    out: Result = {}
    for name, _nodes, _e in SHAPES:
        n = calls[name]
        on_us = median(s[f"{name}.on"]) / n * 1e6
        cost_us = on_us - median(s[f"{name}.off"]) / n * 1e6
        floor_us = median(s[f"{name}.floor"]) / n * 1e6
        out[f"{name}_gross_us"] = metric(on_us, "µs/node", "lower")
        out[f"{name}_telemetry_us"] = metric(cost_us, "µs/node", "lower")
        out[f"{name}_floor_us"] = metric(floor_us, "µs/node", "lower")
        out[f"{name}_ratio"] = metric(cost_us / floor_us, "×", "lower")
        hand_us = median(s[f"{name}.manual"]) / n * 1e6 - median(s[f"{name}.off"]) / n * 1e6
        out[f"{name}_in_engine_floor_us"] = metric(hand_us, "µs/node", "lower")
        out[f"{name}_ratio_in_engine"] = metric(cost_us / hand_us, "×", "lower", target="ours<=1.15")
    out["info"] = {"shapes": [list(x) for x in SHAPES], "repeats": repeats, "samples_s": s}
    return out



@benchmark(
    "api_only",
    "per-node overhead on a 100-node chain with the OpenTelemetry API only (no SDK: "
    "graphai.telemetry.instrument() with the global providers, which are proxies) minus "
    "telemetry off (uninstrument()); runs interleaved, same process",
    impls=("ours",),
    isolate=True,
)
async def api_only(ctx: Context) -> Result:
    from opentelemetry import metrics, trace

    from graphai.telemetry import instrument

    tp, mp = type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__
    if "Proxy" not in tp or "Proxy" not in mp:
        raise AssertionError(f"expected the API's proxy providers, got {tp}, {mp}")
    n, execs = CHAIN_NODES, ctx.size(100, 20)
    calls = n * execs
    instr = instrument()
    graph_runs = chain_runs(chain(n), n, execs)

    async def on() -> float:
        set_instrumentation(instr)
        return await graph_runs()

    async def off() -> float:
        set_instrumentation(None)
        return await graph_runs()

    try:
        s = await interleaved({"on": on, "off": off}, 2 * ctx.repeats + 1, ctx.warmup)
    finally:
        set_instrumentation(instr)
    diff_us = (median(s["on"]) - median(s["off"])) / calls * 1e6
    return {
        "per_node_us": metric(diff_us, "µs/node", "lower", target="ours<=1"),
        "on_us_per_node": metric(median(s["on"]) / calls * 1e6, "µs/node", "lower"),
        "off_us_per_node": metric(median(s["off"]) / calls * 1e6, "µs/node", "lower"),
        "info": {
            "nodes": n,
            "executions": execs,
            "providers": [tp, mp],
            "paired_median_us": median(
                [(a - b) / calls * 1e6 for a, b in zip(s["on"], s["off"], strict=True)]
            ),
            "samples_s": s,
        },
    }


# -- memory ----------------------------------------------------------------------------------
RSS_SCRIPT = Path(__file__).resolve().parent / "bench_rss.py"


async def rss_1m(ctx: Context) -> Result:
    """Runs ``bench_rss.py`` (another engineer's standalone script, used as it is) in fresh
    processes under this interpreter and environment; median of its results."""
    n = ctx.size(1_000_000, 100_000)
    runs = 3
    growth, seconds = [], []
    for _ in range(runs):
        r = subprocess.run(
            [sys.executable, str(RSS_SCRIPT), "--tokens", str(n)],
            capture_output=True,
            text=True,
            cwd=str(REPO),
            timeout=300,
        )
        if r.returncode != 0:
            raise RuntimeError(f"bench_rss.py exit {r.returncode}: {r.stderr.strip()[-500:]}")
        doc = json.loads(r.stdout.strip().splitlines()[-1])
        if doc.get("tokens") != n:
            raise AssertionError(f"bench_rss.py streamed {doc.get('tokens')} tokens, asked {n}")
        growth.append(float(doc["rss_growth_mb"]))
        seconds.append(float(doc["seconds"]))
    return {
        "rss_growth_mb": metric(median(growth), "MB", "lower", target="ours<=20", samples=growth),
        "info": {
            "tokens": n,
            "script": "benchmarks/bench_rss.py",
            "max_growth_mb": max(growth),
            "stream_seconds": seconds,
        },
    }


# bench_rss.py is a standalone script; should it ever register with the harness itself, it
# runs on its own and this wrapper steps aside
if RSS_SCRIPT.exists() and "_harness" not in RSS_SCRIPT.read_text():
    benchmark(
        "rss_1m",
        "peak RSS growth while one stream node emits 1M tokens with telemetry on (SDK "
        "providers, BatchSpanProcessor to a discarding exporter, InMemoryMetricReader), "
        "consumer draining: benchmarks/bench_rss.py run as it is, 3 fresh processes, median",
        impls=("ours",),
        isolate=True,
    )(rss_1m)


if __name__ == "__main__":
    raise SystemExit(main())
