"""
The instrumentation runtime: turns the engine's seam calls (``graphai._hooks``) into spans,
span events, metrics and structlog lines, following ``spec/TELEMETRY.md``.

Hot path: ``_NodeObs.token`` does local bookkeeping only (a timestamp, counters, the max gap,
and a span event while under the event cap). Metrics are recorded once per node run, in
``_NodeObs.end``.

One guard at the seam: every observer method the engine calls (and each phase of an end: span,
metrics, log line) is wrapped by :func:`_seam`. An exception inside telemetry never reaches the
graph; it increments ``graphai.telemetry.internal_errors{where}`` and is logged at most once a
minute per place. A failing phase never stops the next one: a span always ends, a node run always
leaves the active gauge.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import threading
import traceback
import weakref
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter
from time import perf_counter as _perf_counter
from typing import Any, NamedTuple, TypeVar, cast

import structlog
from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from graphai import _hooks
from graphai._log import log_event
from graphai.telemetry import env
from graphai.telemetry import names as N

__all__ = [
    "OTelInstrumentation",
    "active_streams",
    "current_log_context",
    "instrument",
    "is_instrumented",
    "uninstrument",
]

_logger = structlog.get_logger("graphai")
_VERSION = "0.1.0"
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"

# the node run executing in this context (for add_graph_context): one ContextVar holding the
# immutable-for-our-purposes observer, so attach/detach cost one set/reset
_LOG_NODE: contextvars.ContextVar[_NodeObs | None] = contextvars.ContextVar(
    "graphai_log_node", default=None
)


def current_log_context() -> dict[str, str]:
    """``graphai.graph.name``, ``graphai.run.id`` and ``graphai.node.name`` of the running node."""
    obs = _LOG_NODE.get()
    if obs is None:
        return {}
    run = obs.run
    out = {N.GRAPH_NAME: run.graph, N.NODE_NAME: obs.name}
    if run.run_id is not None:
        out[N.RUN_ID] = run.run_id
    return out


_NOOP_TRACER_PROVIDERS = ("ProxyTracerProvider", "NoOpTracerProvider")
_NOOP_METER_PROVIDERS = ("_ProxyMeterProvider", "NoOpMeterProvider", "ProxyMeterProvider")

LOG_EVERY_S = 60.0
"""An internal error is logged at most once per this many seconds per place."""
# where -> [time of the last log line, failures not logged since]
_logged: dict[str, list[float]] = {}
_errors_lock = threading.Lock()


def _internal_error(where: str, exc: BaseException) -> None:
    """Count a telemetry failure (``graphai.telemetry.internal_errors``) and log it at most once
    a minute per place (with the number suppressed since the last line); never raise."""
    try:
        instr = _installed[0]
        inst = instr._inst if instr is not None else None
        if inst is not None:
            inst.internal_errors.add(1, {N.INTERNAL_ERROR_WHERE: where})
    except Exception:
        pass
    now = perf_counter()
    with _errors_lock:
        last = _logged.get(where)
        if last is not None and now - last[0] < LOG_EVERY_S:
            last[1] += 1
            return
        suppressed = int(last[1]) if last is not None else 0
        _logged[where] = [now, 0]
    fields: dict[str, Any] = {"where": where, "error_type": type(exc).__name__}
    if suppressed:
        fields["suppressed"] = suppressed
    log_event("warning", N.LOG_INTERNAL_ERROR, **fields)  # never raises


_F = TypeVar("_F", bound=Callable[..., Any])


def _seam(where: str, default: Any = None) -> Callable[[_F], _F]:
    """The one guard: ``where``'s failures are counted and logged, ``default`` returned."""

    def deco(fn: _F) -> _F:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                _internal_error(where, exc)
                return default

        return cast(_F, guarded)

    return deco


@_seam("log")
def _log(log: Any, level: str, event: str, **fields: Any) -> None:
    """A structlog line of ours: a raising processor or renderer costs the line, nothing else."""
    getattr(log, level)(event, **fields)


def _clean(value: str) -> str:
    """``value`` as exportable text: lone surrogates (``surrogateescape`` names, say) cannot be
    encoded as UTF-8 and would fail every Prometheus scrape and OTLP export; they are written
    as ``\\udcff`` escapes, so distinct names stay distinct."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _redacted_trace(error: BaseException) -> str:
    """A stack trace without the exception's message (it may hold content): the frames, then
    the exception type."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    return f"Traceback (most recent call last):\n{frames}{_exc_type(error)}"


def _exc_type(error: BaseException) -> str:
    cls = type(error)
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


def _record_exception(span: Any, error: BaseException, capture: bool) -> None:
    """The exception event; with content capture off the message is redacted and the stack
    trace has no message lines (exception messages often quote inputs)."""
    if capture:
        span.record_exception(error)
        return
    span.add_event(
        "exception",
        {
            "exception.type": _exc_type(error),
            "exception.message": N.REDACTED,
            "exception.stacktrace": _redacted_trace(error),
            "exception.escaped": "False",
        },
    )


@contextlib.contextmanager
def _current(span: Any) -> Iterator[None]:
    """Make ``span`` current for the lines logged at its end (trace/span ids in those logs)."""
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(token)


def _truncate(value: Any, limit: int) -> str:
    """Captured content as text (JSON, else ``repr``), cut at ``limit``; never raises: a value
    whose ``repr()`` raises becomes ``<unrepresentable TYPE>`` (and is counted)."""
    if isinstance(value, str):
        s = value
    else:
        try:
            s = json.dumps(value, default=repr, ensure_ascii=False, sort_keys=True)
        except Exception:
            try:
                s = repr(value)
            except Exception as exc:
                _internal_error("capture", exc)
                s = f"<unrepresentable {type(value).__name__}>"
    s = _clean(s)
    return s if len(s) <= limit else s[:limit] + "…"


class _Guard:
    """Cardinality guard: at most ``limit`` distinct values per attribute, then ``_OTHER``;
    ``graphai.telemetry.label_overflow`` counts each distinct replaced value once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: dict[str, set[str]] = {}
        self.rejected: set[tuple[str, str]] = set()
        self.overflow: Any = None  # the overflow counter, set with the instruments
        self._lock = threading.Lock()

    def __call__(self, attribute: str, value: str) -> str:
        seen = self.seen.get(attribute)
        if seen is not None and value in seen:
            return value
        value = _clean(value)
        with self._lock:
            seen = self.seen.setdefault(attribute, set())
            if value in seen:
                return value
            if len(seen) < self.limit:
                seen.add(value)
                return value
            # count each replaced value once; memory is bounded: past REJECTED_MAX distinct
            # replaced values, new ones are no longer counted (never counted twice)
            key = (attribute, value)
            if key in self.rejected or len(self.rejected) >= self.REJECTED_MAX:
                return N.OTHER
            self.rejected.add(key)
        if self.overflow is not None:
            self._count(attribute)
        return N.OTHER

    REJECTED_MAX = 100_000

    @_seam("overflow")
    def _count(self, attribute: str) -> None:
        self.overflow.add(1, {N.OVERFLOW_ATTRIBUTE: attribute})


class _Instruments:
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
        self.late_tokens = counter(N.NODE_LATE_TOKENS)
        self.genai_duration = hist(N.GENAI_OPERATION_DURATION)
        self.genai_ttfc = hist(N.GENAI_TTFC)
        self.genai_tpoc = hist(N.GENAI_TPOC)
        _k, unit, desc, _b, _p = N.METRICS[N.NODE_ACTIVE]
        meter.create_observable_gauge(
            N.NODE_ACTIVE, callbacks=[self._observe_active], unit=unit, description=desc
        )
        _k, unit, desc, _b, _p = N.METRICS[N.STREAM_STALLED]
        meter.create_observable_gauge(
            N.STREAM_STALLED, callbacks=[self._observe_stalled], unit=unit, description=desc
        )

    def _owner(self) -> OTelInstrumentation | None:
        instr = _installed[0]
        return instr if instr is not None and instr._instruments_now() is self else None

    def _observe_active(self, options: Any) -> Iterable[Any]:
        instr = self._owner()
        return [] if instr is None else instr._observe_active(options)

    def _observe_stalled(self, options: Any) -> Iterable[Any]:
        instr = self._owner()
        return [] if instr is None else instr._observe_stalled(options)


# meter provider -> its instruments (weakly: a provider dropped by the application goes)
_by_provider: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def _instruments_for(mp: Any) -> _Instruments:
    with _by_provider_lock:
        try:
            inst = _by_provider.get(mp)
        except TypeError:  # not weak-referenceable: no sharing
            inst = None
        if inst is None:
            inst = _Instruments(mp.get_meter(N.SCOPE, _VERSION, schema_url=_SCHEMA_URL))
            with contextlib.suppress(TypeError):
                _by_provider[mp] = inst
        return inst


class _NodeStatic:
    """What every run of one node shares: span name and static attributes, metric label and
    the metric attribute dicts of the common case (outcome ok)."""

    __slots__ = (
        "attributes",
        "base_attrs",
        "by_step",
        "kind",
        "label",
        "model",
        "ok_attrs",
        "span_name",
    )

    def __init__(
        self,
        span_name: str,
        attributes: dict[str, Any],
        label: str,
        kind: str,
        model: str | None,
        ok_attrs: dict[str, Any] | None,
        base_attrs: dict[str, Any] | None,
    ) -> None:
        self.span_name = span_name
        self.attributes = attributes
        self.label = label
        self.kind = kind
        self.model = model
        self.ok_attrs = ok_attrs
        self.base_attrs = base_attrs
        self.by_step: dict[int, dict[str, Any]] = {}

    def at_step(self, step: int) -> dict[str, Any]:
        """The node span's start attributes at ``step`` (shared: copy before changing)."""
        d = self.by_step.get(step)
        if d is None:
            d = dict(self.attributes)
            d[N.NODE_STEP] = step
            if len(self.by_step) < 64:
                self.by_step[step] = d
        return d


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
        tracer_provider: Any = None,
        meter_provider: Any = None,
        settings: env.Settings | None = None,
    ) -> None:
        self.settings = settings or env.from_env()
        self._tp_explicit = tracer_provider
        self._mp_explicit = meter_provider
        self._tp: Any = None
        self._tracer: Any = None
        self._mp: Any = None
        self._inst: _Instruments | None = None
        self._lock = threading.Lock()
        self.guard = _Guard(self.settings.label_limit)
        # live node runs (for the active/stalled gauges and active_streams())
        self.live: set[_NodeObs] = set()
        self.seen_labels: set[tuple[str, str]] = set()
        self._attr_cache: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._static: dict[tuple[Any, ...], _NodeStatic] = {}
        s = self.settings
        # index of the first token event: 0, or -1 when token events are off
        self.first_event = 0 if s.token_events == "all" or (
            s.token_events != "off" and s.token_events_max > 0
        ) else -1

    # -- providers ---------------------------------------------------------------------------
    def _tracer_now(self) -> Any:
        tp = self._tp_explicit or trace.get_tracer_provider()
        if tp is not self._tp:
            with self._lock:
                if type(tp).__name__ in _NOOP_TRACER_PROVIDERS:
                    self._tracer = None
                else:
                    self._tracer = tp.get_tracer(N.SCOPE, _VERSION, schema_url=_SCHEMA_URL)
                self._tp = tp
        return self._tracer

    def _instruments_now(self) -> _Instruments | None:
        mp = self._mp_explicit or otel_metrics.get_meter_provider()
        if mp is not self._mp:
            with self._lock:
                if type(mp).__name__ in _NOOP_METER_PROVIDERS:
                    self._inst = None
                else:
                    self._inst = _instruments_for(mp)
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
        self, run: _RunObs, name: str, kind: str, stream: bool, model: str | None
    ) -> _NodeStatic:
        """What every run of one node shares (span name, static attributes, metric label),
        built once."""
        key = (run.graph, name, kind, stream, model, run.inst is not None)
        st = self._static.get(key)
        if st is None:
            span_name, attributes = _span_name(name, kind, model)
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
            st = _NodeStatic(span_name, attributes, label, kind, model, ok_attrs, base_attrs)
            if len(self._static) < 100_000:
                self._static[key] = st
        return st

    # -- seam -----------------------------------------------------------------------------------
    @_seam("run.start", _hooks.NOOP_RUN)
    def run(self, graph_name: str, run_id: str, payload: dict[str, Any]) -> _hooks.RunObserver:
        tracer = self._tracer_now()
        inst = self._instruments_now()
        logging_on = structlog.is_configured()
        if tracer is None and inst is None and not logging_on:
            return _hooks.NOOP_RUN
        return _RunObs(self, tracer, inst, logging_on, graph_name, run_id, payload)

    @_seam("standalone.start", _hooks.NOOP_NODE)
    def standalone_node(self, name: str) -> _hooks.NodeObserver:
        tracer = self._tracer_now()
        inst = self._instruments_now()
        logging_on = structlog.is_configured()
        if tracer is None and inst is None and not logging_on:
            return _hooks.NOOP_NODE
        run = _RunObs(self, tracer, inst, logging_on, "standalone", None, None, standalone=True)
        return run.node(name, "node", True, 0)

    # -- gauges ---------------------------------------------------------------------------------
    def _observe_active(self, _options: Any) -> Iterable[Any]:
        counts: dict[tuple[str, str], int] = dict.fromkeys(self.seen_labels, 0)
        for obs in list(self.live):
            key = (obs.run.graph_label, obs.static.label)
            counts[key] = counts.get(key, 0) + 1
        return [
            otel_metrics.Observation(v, {N.GRAPH_NAME: g, N.NODE_NAME: n}) for (g, n), v in counts.items()
        ]

    def _observe_stalled(self, _options: Any) -> Iterable[Any]:
        counts: dict[tuple[str, str], int] = dict.fromkeys(self.seen_labels, 0)
        now = perf_counter()
        limit = self.settings.stall_after_s
        for obs in list(self.live):
            if obs.stream and now - (obs.t_last or obs.t0) > limit:
                key = (obs.run.graph_label, obs.static.label)
                counts[key] = counts.get(key, 0) + 1
        return [
            otel_metrics.Observation(v, {N.GRAPH_NAME: g, N.NODE_NAME: n}) for (g, n), v in counts.items()
        ]


class _RunObs(_hooks.RunObserver):
    __slots__ = (
        "ctx",
        "first_t",
        "graph",
        "graph_label",
        "inst",
        "instr",
        "log",
        "run_id",
        "span",
        "t0",
        "tokens",
        "tracer",
    )

    def __init__(
        self,
        instr: OTelInstrumentation,
        tracer: Any,
        inst: _Instruments | None,
        logging_on: bool,
        graph: str,
        run_id: str | None,
        payload: dict[str, Any] | None,
        standalone: bool = False,
    ) -> None:
        self.instr = instr
        self.tracer = tracer
        self.inst = inst
        self.graph = graph = _clean(graph)
        self.graph_label = instr.guard(N.GRAPH_NAME, graph) if inst is not None else graph
        self.run_id = run_id
        self.t0 = perf_counter()
        self.first_t: float | None = None
        self.tokens = 0
        self.span: Any = None
        self.ctx: Any = None
        self.log: Any = None
        if logging_on:
            self.log = _logger.bind(**{N.GRAPH_NAME: graph}, **({N.RUN_ID: run_id} if run_id else {}))
        if standalone:
            self.ctx = otel_context.get_current()
            return
        parent = otel_context.get_current()
        if payload is not None and "traceparent" in payload and trace.get_current_span(parent) is trace.INVALID_SPAN:
            tp = payload.get("traceparent")
            if isinstance(tp, str):
                parent = extract({"traceparent": tp, "tracestate": str(payload.get("tracestate", ""))})
        if tracer is not None:
            attributes: dict[str, Any] = {
                N.GEN_AI_OPERATION_NAME: "invoke_workflow",
                N.GEN_AI_WORKFLOW_NAME: graph,
                N.GRAPH_NAME: graph,
                N.RUN_ID: run_id,
            }
            if instr.settings.capture_content and payload is not None:
                attributes[N.GEN_AI_INPUT_MESSAGES] = _truncate(
                    payload, instr.settings.capture_max_chars
                )
            self.span = tracer.start_span(
                f"{N.RUN_SPAN_PREFIX} {graph}",
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
            )
            self.ctx = trace.set_span_in_context(self.span, parent)
        else:
            self.ctx = parent
        if self.log is not None:
            _log(self.log, "debug", N.LOG_RUN_START)

    def node(
        self,
        name: str,
        kind: str,
        stream: bool,
        step: int,
        join: _hooks.JoinInfo | None = None,
        payload: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> _hooks.NodeObserver:
        return self._node(name, kind, stream, step, join, payload, model)

    @_seam("node.start", _hooks.NOOP_NODE)
    def _node(
        self,
        name: str,
        kind: str,
        stream: bool,
        step: int,
        join: _hooks.JoinInfo | None,
        payload: dict[str, Any] | None,
        model: str | None,
    ) -> _hooks.NodeObserver:
        return _NodeObs(self, name, kind, stream, step, join, payload, model)

    @_seam("run.channel")
    def channel(self, channel: Any) -> None:
        inst = self.inst
        if inst is None:
            return
        hist = inst.delivery_delay
        attrs = self.instr.attrs(self.graph)

        def on_delay(seconds: float) -> None:
            hist.record(seconds, attrs)

        channel.on_delay = on_delay

    def end(
        self,
        outcome: str,
        error: BaseException | None = None,
        steps: int = 0,
        result: dict[str, Any] | None = None,
    ) -> None:
        duration = perf_counter() - self.t0
        ttft = None if self.first_t is None else self.first_t - self.t0
        err = type(error).__name__ if outcome == N.OUTCOME_ERROR and error is not None else None
        # three phases, each guarded on its own: a failing one never skips the next
        if self.span is not None:
            self._end_span(outcome, error, err, steps, result, ttft)
        if self.inst is not None:
            self._end_metrics(outcome, err, duration, ttft)
        if self.log is not None:
            self._end_log(outcome, err, duration, ttft)

    @_seam("run.end")
    def _end_span(
        self,
        outcome: str,
        error: BaseException | None,
        err: str | None,
        steps: int,
        result: dict[str, Any] | None,
        ttft: float | None,
    ) -> None:
        span = self.span
        settings = self.instr.settings
        try:
            attributes: dict[str, Any] = {
                N.RUN_OUTCOME: outcome,
                N.RUN_OUTPUT_TOKENS: self.tokens,
                N.RUN_STEPS: steps,
            }
            if ttft is not None:
                attributes[N.RUN_TTFT] = ttft
            if err is not None:
                attributes[N.ERROR_TYPE] = err
            if settings.capture_content and result is not None:
                attributes[N.GEN_AI_OUTPUT_MESSAGES] = _truncate(result, settings.capture_max_chars)
            span.set_attributes(attributes)
            if err is not None and error is not None:
                span.set_status(Status(StatusCode.ERROR, err))
                _record_exception(span, error, settings.capture_content)
        finally:
            span.end()

    @_seam("run.metrics")
    def _end_metrics(self, outcome: str, err: str | None, duration: float, ttft: float | None) -> None:
        inst = self.inst
        assert inst is not None
        instr = self.instr
        # with the run span as context, the SDK attaches an exemplar (trace id) to these
        # samples: dashboards link a slow run straight to its trace (OTLP path)
        ctx = self.ctx if self.span is not None else None
        inst.graph_duration.record(
            duration, instr.attrs(self.graph, None, None, outcome, err), context=ctx
        )
        if ttft is not None:
            inst.graph_ttft.record(ttft, instr.attrs(self.graph), context=ctx)

    @_seam("run.log")
    def _end_log(self, outcome: str, err: str | None, duration: float, ttft: float | None) -> None:
        with _current(self.span):
            self.log.info(
                N.LOG_RUN_END,
                outcome=outcome,
                duration_s=round(duration, 6),
                ttft_s=None if ttft is None else round(ttft, 6),
                tokens=self.tokens,
                **({N.ERROR_TYPE: err} if err else {}),
            )


def _span_name(name: str, kind: str, model: str | None) -> tuple[str, dict[str, Any]]:
    if kind == "agent":
        return f"{N.AGENT_SPAN_PREFIX} {name}", {
            N.GEN_AI_OPERATION_NAME: "invoke_agent",
            N.GEN_AI_AGENT_NAME: name,
        }
    if kind == "tool":
        return f"{N.TOOL_SPAN_PREFIX} {name}", {
            N.GEN_AI_OPERATION_NAME: "execute_tool",
            N.GEN_AI_TOOL_NAME: name,
            N.GEN_AI_TOOL_TYPE: "function",
        }
    if kind == "llm":
        extra: dict[str, Any] = {N.GEN_AI_OPERATION_NAME: "chat"}
        if model:
            extra[N.GEN_AI_REQUEST_MODEL] = model
        return f"{N.LLM_SPAN_PREFIX} {model or name}", extra
    return name, {}


class _NodeObs(_hooks.NodeObserver):
    """One node run. Streaming-only fields (``n``, ``t_first``, ``t_last``, ``max_gap``,
    ``ev_count``) are set only for streaming nodes, the only ones that receive tokens."""

    __slots__ = (
        "capture",
        "ev_count",
        "ev_next",
        "max_gap",
        "n",
        "name",
        "run",
        "span",
        "static",
        "step",
        "stream",
        "t0",
        "t_first",
        "t_last",
    )

    def __init__(
        self,
        run: _RunObs,
        name: str,
        kind: str,
        stream: bool,
        step: int,
        join: _hooks.JoinInfo | None,
        payload: dict[str, Any] | None,
        model: str | None = None,
    ) -> None:
        self.run = run
        self.name = name = _clean(name)
        self.stream = stream
        self.step = step
        self.capture = False
        if stream:
            self.n = 0
            self.t_first = self.t_last = self.max_gap = 0.0
            self.ev_count = 0
        instr = run.instr
        static = self.static = instr.node_static(run, name, kind, stream, model)
        tracer = run.tracer
        if tracer is not None:
            attributes = static.at_step(step)
            links = None
            if join is not None:
                attributes = attributes.copy()
                attributes[N.JOIN_WAIT] = join.wait_s
                links = []
                for o in join.observers:
                    sp = getattr(o, "span", None)
                    if sp is not None:
                        links.append(Link(sp.get_span_context()))
            settings = instr.settings
            if settings.capture_content and payload is not None:
                attributes = attributes.copy()
                attributes[N.NODE_INPUT] = _truncate(
                    {k: v for k, v in payload.items() if k != "upstream"}, settings.capture_max_chars
                )
                self.capture = True
            self.span = tracer.start_span(
                static.span_name, context=run.ctx, kind=SpanKind.INTERNAL, attributes=attributes, links=links
            )
            self.ev_next = instr.first_event
        else:
            self.span = None
            self.ev_next = -1
        self.t0 = perf_counter()
        instr.live.add(self)
        if run.log is not None:
            _log(run.log, "debug", N.LOG_NODE_START, **{N.NODE_NAME: name, N.NODE_KIND: kind, N.NODE_STEP: step})

    # -- hot path --------------------------------------------------------------------------------
    def token(self, token: Any) -> float | None:
        now = _perf_counter()
        n = self.n
        self.n = n + 1
        if n:
            gap = now - self.t_last
            if gap > self.max_gap:
                self.max_gap = gap
            self.t_last = now
            if n == self.ev_next:
                self._event(n, token)
            # one delivery-delay sample every 256 tokens (the first included)
            return None if n & 255 else now
        self.t_last = now
        self._first(now)
        if self.ev_next == 0:
            self._event(0, token)
        return now

    def _first(self, now: float) -> None:
        self.t_first = now
        run = self.run
        if run.first_t is None:
            run.first_t = now
        span = self.span
        if span is not None:
            self._first_event(span)

    @_seam("event.first")
    def _first_event(self, span: Any) -> None:
        span.add_event(N.EVENT_FIRST_TOKEN, {N.TOKEN_INDEX: 0})

    @_seam("event.token")
    def _add_token_event(self, n: int, token: Any) -> None:
        attributes: dict[str, Any] = {
            N.TOKEN_INDEX: n,
            N.TOKEN_SIZE: len(token) if isinstance(token, str) else 0,
        }
        if self.capture and isinstance(token, str):
            attributes[N.TOKEN_TEXT] = _truncate(token, self.run.instr.settings.capture_max_chars)
        self.span.add_event(N.EVENT_TOKEN, attributes)

    def _event(self, n: int, token: Any) -> None:
        settings = self.run.instr.settings
        self._add_token_event(n, token)
        self.ev_count += 1
        policy = settings.token_events
        if policy == "all":
            self.ev_next = n + 1
        elif self.ev_count >= settings.token_events_max:
            self.ev_next = -1
        elif policy == "sampled" and n + 1 >= env.SAMPLED_HEAD:
            self.ev_next = (n // env.SAMPLED_EVERY + 1) * env.SAMPLED_EVERY
            if self.ev_next < env.SAMPLED_HEAD:
                self.ev_next = env.SAMPLED_HEAD
        else:
            self.ev_next = n + 1

    # -- context ---------------------------------------------------------------------------------
    @_seam("late_token")
    def late_token(self) -> None:
        inst = self.run.inst
        if inst is not None:
            inst.late_tokens.add(1, self.static.base_attrs)

    @_seam("attach")
    def attach(self) -> object:
        t1 = _LOG_NODE.set(self)
        span = self.span
        t2 = otel_context.attach(trace.set_span_in_context(span, self.run.ctx)) if span is not None else None
        return (t1, t2)

    @_seam("detach")
    def detach(self, token: object) -> None:
        if not isinstance(token, tuple):
            return
        t1, t2 = token
        try:
            if t2 is not None:
                otel_context.detach(t2)
        finally:
            _LOG_NODE.reset(t1)

    @_seam("router_choice")
    def router_choice(self, choice: Any) -> None:
        span = self.span
        if span is None or choice is None:
            return
        if isinstance(choice, (list, tuple)):
            value: Any = [_clean(str(c)) for c in choice]
        else:
            value = _clean(str(choice))
        span.set_attribute(N.ROUTER_CHOICE, value)

    @_seam("node.end")
    def end(
        self,
        outcome: str,
        error: BaseException | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        try:
            self.run.instr.live.remove(self)
        except KeyError:
            return  # already ended (end exactly once)
        self._end(outcome, error, output)

    def _end(self, outcome: str, error: BaseException | None, output: dict[str, Any] | None) -> None:
        run = self.run
        duration = perf_counter() - self.t0
        err = type(error).__name__ if outcome == N.OUTCOME_ERROR and error is not None else None
        n = 0
        ttft = tpot = rate = max_gap = None
        if self.stream:
            n = self.n
            run.tokens += n
            if n:
                ttft = self.t_first - self.t0
                if n > 1:
                    span_s = self.t_last - self.t_first
                    tpot = span_s / (n - 1)
                    max_gap = self.max_gap
                    if span_s > 0:
                        rate = (n - 1) / span_s
        m = _EndFigures(duration, n, ttft, tpot, rate, max_gap)
        # three phases, each guarded on its own: a failing one never skips the next
        if self.span is not None:
            self._end_span(outcome, error, err, output, m)
        if run.inst is not None:
            self._end_metrics(outcome, err, m)
        if run.log is not None:
            self._end_log(outcome, error, err, m)

    @_seam("node.end")
    def _end_span(
        self,
        outcome: str,
        error: BaseException | None,
        err: str | None,
        output: dict[str, Any] | None,
        m: _EndFigures,
    ) -> None:
        span = self.span
        try:
            attributes: dict[str, Any] = {N.NODE_OUTCOME: outcome}
            if self.stream:
                attributes[N.NODE_OUTPUT_TOKENS] = m.n
                attributes[N.NODE_EVENTS_DROPPED] = m.n - self.ev_count
                if m.ttft is not None:
                    attributes[N.GEN_AI_RESPONSE_TTFC] = m.ttft
                if m.tpot is not None:
                    attributes[N.NODE_TPOT] = m.tpot
                    attributes[N.NODE_MAX_GAP] = m.max_gap
            if err is not None:
                attributes[N.ERROR_TYPE] = err
            if self.capture and output is not None:
                attributes[N.NODE_OUTPUT] = _truncate(output, self.run.instr.settings.capture_max_chars)
            span.set_attributes(attributes)
            if err is not None and error is not None:
                span.set_status(Status(StatusCode.ERROR, err))
                _record_exception(span, error, self.run.instr.settings.capture_content)
        finally:
            span.end()

    @_seam("node.metrics")
    def _end_metrics(self, outcome: str, err: str | None, m: _EndFigures) -> None:
        run = self.run
        instr = run.instr
        inst = run.inst
        assert inst is not None
        static = self.static
        if outcome == N.OUTCOME_OK and static.ok_attrs is not None:
            attrs = static.ok_attrs
        else:
            attrs = instr.attrs(run.graph, self.name, static.kind, outcome, err)
        inst.node_duration.record(m.duration, attrs)
        if self.stream:
            base = static.base_attrs
            inst.node_tokens.add(m.n, base)
            if m.ttft is not None:
                inst.node_ttft.record(m.ttft, base)
            if m.tpot is not None:
                inst.node_tpot.record(m.tpot, base)
                inst.node_max_gap.record(m.max_gap, base)
            if m.rate is not None:
                inst.node_rate.record(m.rate, base)
        if static.kind == "llm":
            ga: dict[str, Any] = {N.GEN_AI_OPERATION_NAME: "chat"}
            if static.model:
                ga[N.GEN_AI_REQUEST_MODEL] = instr.guard(N.GEN_AI_REQUEST_MODEL, static.model)
            if err is not None:
                ga[N.ERROR_TYPE] = instr.guard(N.ERROR_TYPE, err)
            inst.genai_duration.record(m.duration, ga)
            if m.ttft is not None:
                inst.genai_ttfc.record(m.ttft, ga)
            if m.tpot is not None:
                inst.genai_tpoc.record(m.tpot, ga)

    @_seam("node.log")
    def _end_log(
        self, outcome: str, error: BaseException | None, err: str | None, m: _EndFigures
    ) -> None:
        log = self.run.log
        fields: dict[str, Any] = {
            N.NODE_NAME: self.name,
            N.NODE_KIND: self.static.kind,
            N.NODE_STEP: self.step,
            "outcome": outcome,
            "duration_s": round(m.duration, 6),
        }
        if self.stream:
            fields["ttft_s"] = None if m.ttft is None else round(m.ttft, 6)
            fields["tokens"] = m.n
            fields["token_rate"] = None if m.rate is None else round(m.rate, 3)
        if err is not None:
            fields[N.ERROR_TYPE] = err
        with _current(self.span):
            if err is not None and error is not None:
                if self.run.instr.settings.capture_content:
                    _log(log, "error", N.LOG_NODE_ERROR, exc_info=error, **fields)
                else:  # no message: it may quote inputs
                    _log(log, "error", N.LOG_NODE_ERROR, exception=_redacted_trace(error), **fields)
            log.info(N.LOG_NODE_END, **fields)


class _EndFigures(NamedTuple):
    duration: float
    n: int
    ttft: float | None
    tpot: float | None
    rate: float | None
    max_gap: float | None


# -- installation -----------------------------------------------------------------------------------
_installed: list[OTelInstrumentation | None] = [None]


def instrument(
    tracer_provider: Any = None,
    meter_provider: Any = None,
    settings: env.Settings | None = None,
) -> OTelInstrumentation | None:
    """
    Install graphai's instrumentation, replacing a previous one cleanly: calling it again (with
    the same or other providers or settings) never doubles instruments or callbacks, and node
    runs in flight stay in the active gauge until they end.

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
    instr = OTelInstrumentation(tracer_provider, meter_provider, s)
    prev = _installed[0]
    if prev is not None:
        # node runs in flight stay counted (active gauge, active_streams()) and end normally
        instr.live = prev.live
        instr.seen_labels = prev.seen_labels
    _installed[0] = instr
    _hooks.set_instrumentation(instr)
    return instr


def uninstrument() -> None:
    """Remove graphai's instrumentation: the engine reports to a no-op."""
    _installed[0] = None
    _hooks.set_instrumentation(_hooks.NOOP)


def is_instrumented() -> bool:
    return _installed[0] is not None


def active_streams() -> list[dict[str, Any]]:
    """
    A snapshot of the node runs in progress (the live in-flight view): graph, run id, node,
    kind, tokens so far, seconds since start and since the last token.

    .. versionadded:: 0.1.0
    """
    instr = _installed[0]
    if instr is None:
        return []
    now = perf_counter()
    out = []
    for obs in list(instr.live):
        out.append(
            {
                "graph": obs.run.graph,
                "run_id": obs.run.run_id,
                "node": obs.name,
                "kind": obs.static.kind,
                "stream": obs.stream,
                "tokens": obs.n if obs.stream else 0,
                "age_s": now - obs.t0,
                "since_last_token_s": now - ((obs.t_last if obs.stream else 0.0) or obs.t0),
            }
        )
    return out

