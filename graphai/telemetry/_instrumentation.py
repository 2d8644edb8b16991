"""
Installing graphai's instrumentation: provider resolution (explicit, else the globals at each
run, so an application may set its SDK after import), the per-node static attributes and
metric-attribute caches, the live node runs, and ``instrument()`` / ``uninstrument()``.

Lazy: ``import graphai`` does no telemetry work. The engine's first run resolves the default
instrumentation (``instrument()`` with the global providers and the ``GRAPHAI_*`` settings,
read leniently) unless the application installed one or called ``uninstrument()``.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import deque
from typing import Any

import structlog
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace

from graphai import _hooks
from graphai._log import log_event
from graphai.telemetry import _semconv, _state, env
from graphai.telemetry import names as N
from graphai.telemetry._guard import LabelGuard, clean, seam
from graphai.telemetry._observers import NodeObs, RunObs
from graphai.telemetry._records import NodeStatic
from graphai.telemetry.metrics import Instruments, instruments_for
from graphai.telemetry.tracing import span_name

__all__ = [
    "OTelInstrumentation",
    "install_default",
    "instrument",
    "is_instrumented",
    "uninstrument",
]


def _noop_meter_types() -> tuple[type, ...]:
    types: list[type] = [otel_metrics.NoOpMeterProvider]
    try:  # the API's placeholder until an SDK is set (no public name)
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        types.append(_ProxyMeterProvider)
    except ImportError:  # pragma: no cover - a future API
        pass
    return tuple(types)


_SNAPSHOT_TRIES = 8
"""How often a snapshot of the live node runs retries a copy that saw the set change (only
possible without the GIL)."""

_NOOP_TRACER_TYPES: tuple[type, ...] = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_NOOP_METER_TYPES = _noop_meter_types()


class OTelInstrumentation(_hooks.Instrumentation):
    """
    The OpenTelemetry implementation of the engine's seam.

    Args:
        tracer_provider, meter_provider: explicit providers; ``None`` follows the global ones
            (resolved at each run, so an application may configure the SDK after import).
        settings: ``env.Settings`` (default: read from the environment).
    """

    enabled = True

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
        settings: env.Settings | None = None,
    ) -> None:
        self.settings = settings or env.from_env()
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._tp: Any = None
        self._tracer: Any = None
        self._mp: Any = None
        self._inst: Instruments | None = None
        self._lock = threading.Lock()
        self.guard = LabelGuard(self.settings.label_limit)
        # the GenAI names of the settings' conventions mode, resolved once (_semconv)
        self.conv = _semconv.conventions(self.settings.genai_semconv)
        self.genai_attrs = _semconv.GenAIAttributes(self.guard)
        # live node runs (active/stalled gauges, active_streams()): runs add and remove
        # themselves (set.add / set.remove are atomic under the GIL, no lock on the node hot
        # path); scrape threads take snapshots (live_snapshot), never iterate the live set
        self.live: set[NodeObs] = set()
        # standalone node runs whose callback was dropped while they were open, queued by a
        # weakref callback (a deque append: no telemetry work at garbage-collection time) and
        # ended as cancelled at the next safe point (a run or standalone start, a snapshot)
        self.orphans: deque[NodeObs] = deque()
        self.seen_labels: set[tuple[str, str]] = set()
        self._attr_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._static: dict[tuple[Any, ...], NodeStatic] = {}
        # (graph, metrics on) -> node name -> static: one lookup per run, one per node
        self._statics: dict[tuple[str, bool], dict[str, NodeStatic]] = {}
        s = self.settings
        self.capture = s.capture_content
        # index of the first token event: 0, or -1 when token events are off
        self.first_event = 0 if s.token_events == "all" or (
            s.token_events != "off" and s.token_events_max > 0
        ) else -1

    def adopt_live(self, prev: OTelInstrumentation) -> None:
        """Take over ``prev``'s node runs in flight: they stay counted and end normally."""
        self.live = prev.live
        self.orphans = prev.orphans
        self.seen_labels = prev.seen_labels

    def end_orphans(self) -> None:
        """End the standalone node runs whose callback was dropped open (as cancelled)."""
        orphans = self.orphans
        while orphans:
            try:
                obs = orphans.popleft()
            except IndexError:  # another thread took the last one
                return
            obs.end(_hooks.CANCELLED)

    def live_snapshot(self) -> list[NodeObs]:
        """A copy of the live node runs, safe from any thread. ``list(set)`` runs in C without
        releasing the GIL, so the copy is atomic; where it is not (a build without the GIL),
        a copy that saw the set change is retried, and after a few tries the answer is empty
        for this collection rather than a wrong one."""
        if self.orphans:
            self.end_orphans()
        for _ in range(_SNAPSHOT_TRIES):
            try:
                return list(self.live)
            except RuntimeError:  # "Set changed size during iteration"
                continue
        return []

    # -- providers ---------------------------------------------------------------------------
    def tracer(self) -> Any:
        """The tracer of the explicit or current global provider (``None``: no-op)."""
        tp = self.tracer_provider or trace.get_tracer_provider()
        if tp is not self._tp:
            with self._lock:
                if isinstance(tp, _NOOP_TRACER_TYPES):
                    self._tracer = None
                else:
                    self._tracer = tp.get_tracer(
                        N.SCOPE, _state.VERSION, schema_url=_state.SCHEMA_URL
                    )
                self._tp = tp
        return self._tracer

    def instruments(self) -> Instruments | None:
        """The instruments of the explicit or current global meter provider (``None``: no-op)."""
        mp = self.meter_provider or otel_metrics.get_meter_provider()
        if mp is not self._mp:
            with self._lock:
                if isinstance(mp, _NOOP_METER_TYPES):
                    self._inst = None
                else:
                    self._inst = instruments_for(mp)
                    self.guard.overflow = self._inst.overflow
                self._mp = mp
        return self._inst

    # -- attributes ----------------------------------------------------------------------------
    def attrs(self, *key: Any) -> dict[str, Any]:
        """Metric attribute dicts, built once per distinct key (graph, node, kind, outcome,
        error type); names pass the cardinality guard."""
        d = self._attr_cache.get(key)
        if d is None:
            graph, node, kind, outcome, err = (key + (None,) * 5)[:5]
            d = {N.GRAPH_NAME: self.guard(N.GRAPH_NAME, graph)}
            if node is not None:
                d[N.NODE_NAME] = self.guard(N.NODE_NAME, node)
            if kind is not None:
                d[N.NODE_KIND] = kind
            if outcome is not None:
                d[N.NODE_OUTCOME if node is not None else N.RUN_OUTCOME] = outcome
            if err is not None:
                d[N.ERROR_TYPE] = self.guard(N.ERROR_TYPE, err)
            if len(self._attr_cache) < 100_000:
                self._attr_cache[key] = d
        return d

    def node_static(
        self, run: RunObs, name: str, kind: str, stream: bool, model: str | None
    ) -> NodeStatic:
        """What every run of one node shares (span name, static attributes, metric label),
        built once."""
        raw = name
        name = clean(name)
        key = (run.graph, name, kind, stream, model, run.inst is not None)
        st = self._static.get(key)
        if st is None:
            name_of_span, attributes = span_name(name, kind, model)
            attributes[N.NODE_NAME] = name
            attributes[N.NODE_KIND] = kind
            attributes[N.NODE_STREAM] = stream
            attributes[N.GRAPH_NAME] = run.graph
            if stream:
                attributes[N.GEN_AI_REQUEST_STREAM] = True
            label = self.guard(N.NODE_NAME, name) if run.inst is not None else name
            ok_attrs = base_attrs = None
            if run.inst is not None:
                self.seen_labels.add((run.graph_label, label))
                ok_attrs = self.attrs(run.graph, name, kind, N.OUTCOME_OK)
                base_attrs = self.attrs(run.graph, name)
            st = NodeStatic(name, name_of_span, attributes, label, kind, stream, model, ok_attrs, base_attrs)
            if len(self._static) < 100_000:
                self._static[key] = st
        by_name = run.statics
        if len(by_name) < 10_000:
            by_name[raw] = st
        return st

    def statics_for(self, graph: str, metrics_on: bool) -> dict[str, NodeStatic]:
        """Graph ``graph``'s node statics by node name (filled by :meth:`node_static`), read
        once per run: a node run finds its static with one lookup by name."""
        key = (graph, metrics_on)
        d = self._statics.get(key)
        if d is None:
            d = {}
            if len(self._statics) < 10_000:
                d = self._statics.setdefault(key, d)
        return d

    # -- seam -----------------------------------------------------------------------------------
    @seam("run.start", _hooks.NOOP_RUN)
    def run(self, graph_name: str, run_id: str, payload: dict[str, Any]) -> _hooks.RunObserver:
        if self.orphans:
            self.end_orphans()
        tracer = self.tracer()
        inst = self.instruments()
        logging_on = structlog.is_configured()
        if tracer is None and inst is None and not logging_on:
            return _hooks.NOOP_RUN
        return RunObs(self, tracer, inst, logging_on, graph_name, run_id, payload)

    @seam("standalone.start", _hooks.NOOP_NODE)
    def standalone_node(self, name: str, owner: object | None = None) -> _hooks.NodeObserver:
        if self.orphans:
            self.end_orphans()
        tracer = self.tracer()
        inst = self.instruments()
        logging_on = structlog.is_configured()
        if tracer is None and inst is None and not logging_on:
            return _hooks.NOOP_NODE
        run = RunObs(self, tracer, inst, logging_on, "standalone", None, None, standalone=True)
        obs = run.node(name, "node", True, 0)
        if owner is not None and isinstance(obs, NodeObs):
            obs.owner = weakref.ref(owner, functools.partial(_orphaned, self.orphans, obs))
        return obs


def _orphaned(orphans: deque[NodeObs], obs: NodeObs, _ref: object) -> None:
    # runs at garbage-collection time, in any thread: queue only (an atomic append)
    orphans.append(obs)


def instrument(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: otel_metrics.MeterProvider | None = None,
    settings: env.Settings | None = None,
) -> OTelInstrumentation | None:
    """
    Install graphai's instrumentation. Idempotent: the same providers and settings as the
    installed instrumentation change nothing (a ``telemetry.already_instrumented`` warning);
    other ones replace it cleanly (never doubled instruments or callbacks; node runs in flight
    stay counted until they end). ``uninstrument()`` undoes it.

    Args:
        tracer_provider, meter_provider: explicit providers; ``None`` follows the global ones.
        settings: override the ``GRAPHAI_*`` environment settings.

    Returns the installed instrumentation, or ``None`` when ``GRAPHAI_TELEMETRY=off``.

    .. versionadded:: 0.1.0
    """
    s = settings or env.from_env()
    if not s.enabled:
        uninstrument()
        return None
    prev = _state.INSTALLED[0]
    if (
        prev is not None
        and prev.tracer_provider is tracer_provider
        and prev.meter_provider is meter_provider
        and prev.settings == s
    ):
        log_event("warning", N.LOG_ALREADY_INSTRUMENTED, action="unchanged")
        return prev
    instr = OTelInstrumentation(tracer_provider, meter_provider, s)
    if prev is not None:
        instr.adopt_live(prev)
    _state.INSTALLED[0] = instr
    _hooks.set_instrumentation(instr)
    return instr


def uninstrument() -> None:
    """Remove graphai's instrumentation: the engine reports to a no-op (until ``instrument()``)."""
    _state.INSTALLED[0] = None
    _hooks.set_instrumentation(_hooks.NOOP)


def is_instrumented() -> bool:
    """Whether graphai reports telemetry (resolving the default instrumentation first)."""
    _hooks.get_instrumentation()
    return _state.INSTALLED[0] is not None


def install_default() -> _hooks.Instrumentation:
    """The default instrumentation, resolved on the engine's first use: the global providers
    and the environment's settings (read leniently: a bad value warns and uses its default)."""
    instr = instrument()
    return instr if instr is not None else _hooks.NOOP
