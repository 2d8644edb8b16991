"""
Shared code for the peer benchmarks: the command line, the timing loop, the correctness checks
and the OpenTelemetry setup every ``peer_*.py`` script uses. Standard library only at import
(every engine's venv imports it); OpenTelemetry is imported inside the telemetry helpers.

A peer script describes its engine with :class:`Peer` and ends with
``raise SystemExit(main(peer))``. One process measures one thing: ``run.py`` starts a fresh
process per engine, variant, measure and round.

Measures (``--measure``):

- ``stream``: one node emits ``--size`` distinct tokens (``t0``, ``t1``, ...) to a consumer that
  runs concurrently; seconds from the run's start until the consumer saw the end: tokens/s.
- ``chain``: a linear chain of ``--size`` trivial async nodes (``x -> x + 1``), executed
  ``execs`` times per sample: µs per node (gross: run setup and the node bodies included).
- ``fanout``: start -> ``FANOUT`` parallel nodes (node ``i`` contributes ``i``) -> a join that
  sums them: µs per run.

Timing: one warmup (stream: a tenth of the tokens; chain and fan-out: one execution), then, for
chain and fan-out, one calibration execution that sets ``execs`` so that a sample takes about
``--sample-s``; then up to ``--repeats`` samples, stopping once they add up to ``--budget-s``
(at least one). A warmup execution that alone took longer than the budget is kept as the only
sample (``warmup_kept``): at that length its first-run costs are noise, and a second run would
double the cost of the slowest cells. A full GC runs before each run. Every run, warmup
included, is checked (exact tokens in order, final state value); a failed check or an exception
makes the process exit 1 with the problem in its JSON, and ``run.py`` stops there.

With telemetry (``--telemetry sdk|on``) each run is followed, inside its timed window, by
``TracerProvider.force_flush()``: a sample ends once every span it made was exported, so an
engine is not credited for export work its batch processor left for later (the rate it could
sustain). ``value_run_only`` is the same figure without the flush.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib.metadata as md
import importlib.util
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

FANOUT = 20
FANOUT_TOTAL = sum(range(FANOUT))  # the join's sum when every branch contributed once
MEASURES = ("stream", "chain", "fanout")
TELEMETRY = ("off", "sdk", "on")
perf_counter = time.perf_counter

#: One run of the selected measure: given the tokens (stream) or the executions (chain,
#: fan-out) to do, returns the seconds it took and ``None``, or a problem found by its check.
Run = Callable[[int], Awaitable[tuple[float, str | None]]]


@functools.lru_cache(maxsize=4)
def tokens(n: int) -> list[str]:
    """The ``n`` distinct tokens a stream run emits, in order (cached: built once per size)."""
    return [f"t{i}" for i in range(n)]


def check_tokens(got: Sequence[Any], n: int) -> str | None:
    """``None`` if ``got`` is exactly ``tokens(n)``, else where it differs."""
    want = tokens(n)
    if list(got) == want:
        return None
    if len(got) != len(want):
        return f"consumer got {len(got)} tokens, expected {len(want)}"
    i = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
    return f"token {i} is {got[i]!r}, expected {want[i]!r}"


def check_equal(what: str, got: Any, want: Any) -> str | None:
    return None if got == want else f"{what} = {got!r}, expected {want!r}"


@dataclass
class Telemetry:
    """The OpenTelemetry SDK setup every 'with telemetry' run shares (see :func:`otel_sdk`)."""

    tracer_provider: Any
    meter_provider: Any


@dataclass
class Peer:
    """One engine, as a peer script describes it.

    Args:
        engine: the engine's name in the table.
        dists: distributions whose versions are reported.
        module: the module whose ``__file__`` is reported (``run.py`` checks where it came from).
        build: returns the :data:`Run` of the selected measure (``args.measure``, ``args.size``,
            ``args.variant``); called after the telemetry is set up.
        variants: what ``--variant`` accepts (the first is the default).
        instrument: installs the engine's own instrumentation on the shared providers
            (``--telemetry on``); returns facts for the JSON.
        expected_spans: spans the instrumentation must have exported for ``executions``
            runs of the measure, when the engine's telemetry promises an exact number.
    """

    engine: str
    dists: tuple[str, ...]
    module: str
    build: Callable[[argparse.Namespace], Run]
    variants: tuple[str, ...] = ("default",)
    instrument: Callable[[Telemetry], dict[str, Any]] | None = None
    expected_spans: Callable[[argparse.Namespace, int], int] | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def versions(*dists: str) -> dict[str, str]:
    out = {}
    for d in dists:
        try:
            out[d] = md.version(d)
        except md.PackageNotFoundError:
            out[d] = "not installed"
    return out


def module_file(name: str) -> str:
    """Where ``name`` is imported from (a namespace package: its first directory)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        return "?"
    if spec.origin:
        return str(spec.origin)
    return next(iter(spec.submodule_search_locations or ["?"]))


# -- timing ----------------------------------------------------------------------------------
@dataclass
class Timed:
    samples: list[float]  # seconds per sample (export included when there is a settle step)
    run_only: list[float]  # the same without the settle step
    execs: int  # executions per sample (stream: 1)
    executions: int  # runs made in all, warmup and calibration included
    warmup_kept: bool
    problems: list[str]


Settle = Callable[[], Any]


async def _one(
    run: Run, scale: int, problems: list[str], label: str, settle: Settle | None
) -> tuple[float, float]:
    """One run (after a full GC), then ``settle`` (with telemetry: export every span the run
    made); returns (seconds including settle, seconds of the run alone)."""
    gc.collect()
    dt, problem = await run(scale)
    if problem:
        problems.append(f"{label}: {problem}")
    if settle is None:
        return dt, dt
    t0 = perf_counter()
    settle()
    return dt + (perf_counter() - t0), dt


async def timed(run: Run, args: argparse.Namespace, settle: Settle | None = None) -> Timed:
    """Warm up, calibrate, sample (see the module docstring)."""
    problems: list[str] = []
    stream = args.measure == "stream"
    warm_scale = max(1, args.size // 10) if stream else 1
    warm, warm_run = await _one(run, warm_scale, problems, "warmup", settle)
    executions = 1
    if not stream and warm >= args.budget_s:
        return Timed([warm], [warm_run], 1, executions, True, problems)
    execs = 1
    if not stream:
        one, _ = await _one(run, 1, problems, "calibration", settle)
        executions += 1
        execs = max(1, min(args.max_execs, math.ceil(args.sample_s / max(one, 1e-9))))
    samples: list[float] = []
    run_only: list[float] = []
    for i in range(args.repeats):
        dt, dt_run = await _one(
            run, args.size if stream else execs, problems, f"sample {i}", settle
        )
        samples.append(dt)
        run_only.append(dt_run)
        executions += execs
        if sum(samples) >= args.budget_s:
            break
    return Timed(samples, run_only, execs, executions, False, problems)


def per_sample_value(measure: str, size: int, execs: int, seconds: float) -> float:
    if measure == "stream":
        return size / seconds
    if measure == "chain":
        return seconds / (size * execs) * 1e6
    return seconds / execs * 1e6


UNITS = {"stream": "tokens/s", "chain": "µs/node", "fanout": "µs/run"}


# -- telemetry -------------------------------------------------------------------------------
def otel_sdk(endpoint: str, metric_interval_ms: int = 1000) -> Telemetry:
    """What both sides of the telemetry comparison get, as an application would set it up
    (the same components as ``graphai.telemetry.configure()`` builds, without Prometheus):
    an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` over the OTLP/gRPC span exporter
    (queue 65536, so no span of the 1000-node chain is dropped), a ``MeterProvider`` with a
    ``PeriodicExportingMetricReader`` over the OTLP/gRPC metric exporter every second, both to
    the local receiver ``run.py`` started, both set as the global providers."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "peer-bench"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True), max_queue_size=1 << 16
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True),
        export_interval_millis=metric_interval_ms,
    )
    mp = MeterProvider(resource=resource, metric_readers=[reader])
    trace.set_tracer_provider(tp)
    metrics.set_meter_provider(mp)
    return Telemetry(tp, mp)


def otel_flush(tel: Telemetry) -> dict[str, Any]:
    """Export everything still queued (so the receiver has it all when ``run.py`` counts), then
    shut the providers down."""
    t0 = perf_counter()
    spans_ok = tel.tracer_provider.force_flush(30_000)
    metrics_ok = tel.meter_provider.force_flush(30_000)
    flush_s = perf_counter() - t0
    tel.tracer_provider.shutdown()
    tel.meter_provider.shutdown()
    return {"flushed": bool(spans_ok and metrics_ok), "flush_s": round(flush_s, 3)}


# -- command line ----------------------------------------------------------------------------
def parser(peer: Peer) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=f"{peer.engine} peer benchmark (benchmarks/peers)")
    p.add_argument("--measure", choices=MEASURES, required=True)
    p.add_argument("--size", type=int, required=True, help="tokens (stream) or nodes (chain)")
    p.add_argument("--variant", choices=peer.variants, default=peer.variants[0])
    p.add_argument("--telemetry", choices=TELEMETRY, default="off")
    p.add_argument("--otlp-endpoint", default="", help="OTLP/gRPC receiver (telemetry sdk/on)")
    p.add_argument("--repeats", type=int, default=5, help="samples at most")
    p.add_argument("--budget-s", type=float, default=3.0, help="stop sampling past this total")
    p.add_argument("--sample-s", type=float, default=0.2, help="chain/fanout: target per sample")
    p.add_argument("--max-execs", type=int, default=2000, help="chain/fanout: executions cap")
    p.add_argument("--out", default="", help="write the JSON here (default: stdout)")
    return p


def main(peer: Peer, argv: list[str] | None = None) -> int:
    args = parser(peer).parse_args(argv)
    if args.measure == "fanout":
        args.size = FANOUT
    if args.telemetry != "off" and not args.otlp_endpoint:
        raise SystemExit("--telemetry sdk/on needs --otlp-endpoint")
    # upstream graphai-lib's Callback() warns on every construction: noise here
    warnings.simplefilter("ignore")
    t_start = perf_counter()
    facts: dict[str, Any] = dict(peer.facts)
    tel = otel_sdk(args.otlp_endpoint) if args.telemetry != "off" else None
    if tel is not None and args.telemetry == "on":
        if peer.instrument is None:
            raise SystemExit(f"{peer.engine} has no instrumentation to turn on")
        facts.update(peer.instrument(tel))
    try:
        run = peer.build(args)
        settle = None if tel is None else lambda: tel.tracer_provider.force_flush(30_000)
        res = asyncio.run(timed(run, args, settle))
    except Exception as exc:  # the run itself failed: report it, no figure
        res = Timed([], [], 0, 0, False, [f"{type(exc).__name__}: {exc}"])
    facts.update(peer.facts)  # build() may have added some
    if tel is not None:
        facts["otel"] = otel_flush(tel)
    per = [per_sample_value(args.measure, args.size, res.execs, s) for s in res.samples]
    per_run_only = [per_sample_value(args.measure, args.size, res.execs, s) for s in res.run_only]
    ok = not res.problems and bool(per)
    doc = {
        "engine": peer.engine,
        "variant": args.variant,
        "measure": args.measure,
        "size": args.size,
        "telemetry": args.telemetry,
        "ok": ok,
        "problems": res.problems[:5],
        "unit": UNITS[args.measure],
        "value": statistics.median(per) if ok else None,
        "samples": per,
        "value_run_only": statistics.median(per_run_only) if ok else None,
        "execs": res.execs,
        "executions": res.executions,
        "expected_spans": (
            peer.expected_spans(args, res.executions)
            if peer.expected_spans and args.telemetry == "on"
            else None
        ),
        "warmup_kept": res.warmup_kept,
        "wall_s": round(perf_counter() - t_start, 3),
        "python": platform.python_version(),
        "executable": sys.executable,
        "module_file": module_file(peer.module),
        "pid": os.getpid(),
        "versions": versions(*peer.dists),
        "facts": facts,
    }
    text = json.dumps(doc)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0 if ok else 1


async def consume_into(items: list[Any], stream: Any) -> None:
    """Drain an async iterator into ``items`` (the cheapest consumer that sees every item:
    extracting and checking tokens happens after the clock stopped)."""
    append = items.append
    async for item in stream:
        append(item)
