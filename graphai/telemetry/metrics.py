"""
Metrics: the instruments (created once per meter provider, shared by every instrumentation that
reports to it), the observable gauges (registered once, reading the instrumentation installed at
collection time) and the writers that record one run or one node run from its end figures.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics as otel_metrics

from graphai.telemetry import _semconv, _state
from graphai.telemetry import names as N
from graphai.telemetry._guard import seam

if TYPE_CHECKING:
    from graphai.telemetry._instrumentation import OTelInstrumentation
    from graphai.telemetry._observers import NodeObs, RunObs
    from graphai.telemetry._records import EndFigures

__all__ = ["Instruments", "instruments_for", "observe_active", "observe_stalled", "record_node", "record_run"]


class Instruments:
    """Every instrument, created once per meter provider and shared by every instrumentation
    that reports to it (an SDK returns the first registration of a name and drops a second
    one's callbacks). The observable gauges read the live node runs of the instrumentation
    installed at collection time, so ``instrument()`` twice never freezes them."""

    def __init__(self, meter: Any) -> None:
        def hist(name: str) -> Any:
            _kind, unit, desc, buckets, _prom = N.METRICS[name]
            return meter.create_histogram(
                name,
                unit=unit,
                description=desc,
                explicit_bucket_boundaries_advisory=list(buckets or ()),
            )

        def counter(name: str) -> Any:
            _kind, unit, desc, _b, _prom = N.METRICS[name]
            return meter.create_counter(name, unit=unit, description=desc)

        self.graph_duration = hist(N.GRAPH_DURATION)
        self.graph_ttft = hist(N.GRAPH_TTFT)
        self.node_duration = hist(N.NODE_DURATION)
        self.node_ttft = hist(N.NODE_TTFT)
        self.node_tpot = hist(N.NODE_TPOT_METRIC)
        self.node_max_gap = hist(N.NODE_MAX_GAP_METRIC)
        self.node_rate = hist(N.NODE_TOKEN_RATE)
        self.node_tokens = counter(N.NODE_TOKENS)
        self.delivery_delay = hist(N.DELIVERY_DELAY)
        self.overflow = counter(N.LABEL_OVERFLOW)
        self.internal_errors = counter(N.INTERNAL_ERRORS)
        self.export_failures = counter(N.EXPORT_FAILURES)
        self.late_tokens = counter(N.NODE_LATE_TOKENS)
        self.genai_duration = hist(N.GENAI_OPERATION_DURATION)
        self.genai_ttfc = hist(N.GENAI_TTFC)
        self.genai_tpoc = hist(N.GENAI_TPOC)
        # the GenAI histograms of both conventions modes, by name (an instrumentation's
        # _semconv.Conventions says which it records; one never recorded is never exported)
        self.genai: dict[str, Any] = {
            N.GENAI_OPERATION_DURATION: self.genai_duration,
            N.GENAI_TTFC: self.genai_ttfc,
            N.GENAI_TPOC: self.genai_tpoc,
        }
        for name in _semconv.GENAI_HISTOGRAMS:
            if name not in self.genai:
                self.genai[name] = hist(name)
        _k, unit, desc, _b, _p = N.METRICS[N.NODE_ACTIVE]
        meter.create_observable_gauge(
            N.NODE_ACTIVE, callbacks=[self._observe_active], unit=unit, description=desc
        )
        _k, unit, desc, _b, _p = N.METRICS[N.STREAM_STALLED]
        meter.create_observable_gauge(
            N.STREAM_STALLED, callbacks=[self._observe_stalled], unit=unit, description=desc
        )

    def _owner(self) -> OTelInstrumentation | None:
        instr = _state.INSTALLED[0]
        return instr if instr is not None and instr.instruments() is self else None

    def _observe_active(self, options: Any) -> Iterable[Any]:
        instr = self._owner()
        return [] if instr is None else observe_active(instr)

    def _observe_stalled(self, options: Any) -> Iterable[Any]:
        instr = self._owner()
        return [] if instr is None else observe_stalled(instr)


# meter provider -> its instruments (weakly: a provider dropped by the application goes)
_by_provider: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def instruments_for(mp: Any) -> Instruments:
    """The instruments of meter provider ``mp``, created on first use."""
    with _by_provider_lock:
        try:
            inst = _by_provider.get(mp)
        except TypeError:  # not weak-referenceable: no sharing
            inst = None
        if inst is None:
            inst = Instruments(mp.get_meter(N.SCOPE, _state.VERSION, schema_url=_state.SCHEMA_URL))
            with contextlib.suppress(TypeError):
                _by_provider[mp] = inst
        return inst


def observe_active(instr: OTelInstrumentation) -> Iterable[Any]:
    """``graphai.node.active``: live node runs per (graph, node), 0 for labels seen before."""
    counts: dict[tuple[str, str], int] = dict.fromkeys(instr.seen_labels, 0)
    for obs in instr.live_snapshot():
        key = (obs.run.graph_label, obs.static.label)
        counts[key] = counts.get(key, 0) + 1
    return [
        otel_metrics.Observation(v, {N.GRAPH_NAME: g, N.NODE_NAME: n}) for (g, n), v in counts.items()
    ]

def observe_stalled(instr: OTelInstrumentation) -> Iterable[Any]:
    """``graphai.stream.stalled``: streaming node runs without a token for too long."""
    counts: dict[tuple[str, str], int] = dict.fromkeys(instr.seen_labels, 0)
    now = perf_counter()
    limit = instr.settings.stall_after_s
    for obs in instr.live_snapshot():
        if obs.stream and now - (obs.t_last or obs.t0) > limit:
            key = (obs.run.graph_label, obs.static.label)
            counts[key] = counts.get(key, 0) + 1
    return [
        otel_metrics.Observation(v, {N.GRAPH_NAME: g, N.NODE_NAME: n}) for (g, n), v in counts.items()
    ]


@seam("run.metrics")
def record_run(run: RunObs, outcome: str, err: str | None, duration: float, ttft: float | None) -> None:
    inst = run.inst
    assert inst is not None
    instr = run.instr
    # with the run span as context, the SDK attaches an exemplar (trace id) to these
    # samples: dashboards link a slow run straight to its trace (OTLP path)
    ctx = run.ctx if run.span is not None else None
    inst.graph_duration.record(
        duration, instr.attrs(run.graph, None, None, outcome, err), context=ctx
    )
    if ttft is not None:
        inst.graph_ttft.record(ttft, instr.attrs(run.graph), context=ctx)
    metric = instr.conv.run_duration
    if metric is not None:  # gen_ai_latest_experimental: a run is an invoke_workflow invocation
        attrs = instr.genai_attrs(_semconv.RUN, run.graph_label, None, err)
        inst.genai[metric].record(duration, attrs, context=ctx)


def record_node(node: NodeObs, outcome: str, err: str | None, m: EndFigures) -> None:
    """Unguarded: the observer calls it inside the seam's guard (``node.metrics``)."""
    run = node.run
    instr = run.instr
    inst = run.inst
    assert inst is not None
    static = node.static
    if outcome == N.OUTCOME_OK and static.ok_attrs is not None:
        attrs = static.ok_attrs
    else:
        attrs = instr.attrs(run.graph, node.name, static.kind, outcome, err)
    inst.node_duration.record(m.duration, attrs)
    if node.stream:
        base = static.base_attrs
        inst.node_tokens.add(m.n, base)
        if m.ttft is not None:
            inst.node_ttft.record(m.ttft, base)
        if m.tpot is not None:
            inst.node_tpot.record(m.tpot, base)
            inst.node_max_gap.record(m.max_gap, base)
        if m.rate is not None:
            inst.node_rate.record(m.rate, base)
    # GenAI histograms: names from the instrumentation's conventions mode, attribute dicts
    # built once per node definition and error type
    kind = static.kind
    if kind == "llm":
        conv = instr.conv
        genai = inst.genai
        ga = instr.genai_attrs(kind, "", static.model, err)
        genai[conv.llm_duration].record(m.duration, ga)
        if m.ttft is not None:
            genai[conv.llm_ttfc].record(m.ttft, ga)
        if m.tpot is not None:
            genai[conv.llm_tpoc].record(m.tpot, ga)
    else:
        metric = instr.conv.node_durations.get(kind)
        if metric is not None:  # gen_ai_latest_experimental: agent and tool nodes
            inst.genai[metric].record(m.duration, instr.genai_attrs(kind, static.label, None, err))
