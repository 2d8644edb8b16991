"""
The observers the engine calls through ``graphai._hooks``: :class:`RunObs` (one graph run) and
:class:`NodeObs` (one node run, with the token hot path). They hold state only; spans, metrics
and log lines are written by ``tracing``, ``metrics`` and ``_log_lines`` from one
``_records.EndFigures`` record per node run.
"""

from __future__ import annotations

import weakref
from time import perf_counter
from time import perf_counter as _perf_counter
from typing import TYPE_CHECKING, Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace

from graphai import _hooks
from graphai.telemetry import _state, env
from graphai.telemetry import names as N
from graphai.telemetry._guard import clean, internal_error, safe_log, seam
from graphai.telemetry._log_lines import log_node_end, log_run_end
from graphai.telemetry._records import EndFigures
from graphai.telemetry.metrics import Instruments, record_node, record_run
from graphai.telemetry.tracing import (
    end_node_span,
    end_run_span,
    first_token_event,
    parent_context,
    start_node_span,
    start_run_span,
    token_event,
)

if TYPE_CHECKING:
    from graphai.telemetry._instrumentation import OTelInstrumentation

__all__ = ["NodeObs", "RunObs", "current_log_context"]

_logger = structlog.get_logger("graphai")
_set_log_node = _state.LOG_NODE.set
_INTERNAL = trace.SpanKind.INTERNAL
_attach, _detach, _in_context = otel_context.attach, otel_context.detach, trace.set_span_in_context


def current_log_context() -> dict[str, str]:
    """``graphai.graph.name``, ``graphai.run.id`` and ``graphai.node.name`` of the running node."""
    obs = _state.LOG_NODE.get()
    if obs is None:
        return {}
    run = obs.run
    out = {N.GRAPH_NAME: run.graph, N.NODE_NAME: obs.name}
    if run.run_id is not None:
        out[N.RUN_ID] = run.run_id
    return out


class RunObs(_hooks.RunObserver):
    """One graph run: its span, its log binding, its first-token time and token count."""

    __slots__ = (
        "ctx",
        "first_t",
        "graph",
        "graph_label",
        "inst",
        "instr",
        "live",
        "log",
        "run_id",
        "span",
        "statics",
        "t0",
        "tokens",
        "tracer",
    )

    def __init__(
        self,
        instr: OTelInstrumentation,
        tracer: Any,
        inst: Instruments | None,
        logging_on: bool,
        graph: str,
        run_id: str | None,
        payload: dict[str, Any] | None,
        standalone: bool = False,
    ) -> None:
        self.instr = instr
        self.tracer = tracer
        self.inst = inst
        self.graph = graph = clean(graph)
        self.graph_label = instr.guard(N.GRAPH_NAME, graph) if inst is not None else graph
        self.run_id = run_id
        self.t0 = perf_counter()
        self.first_t: float | None = None
        self.tokens = 0
        self.span: Any = None
        self.ctx: Any = None
        self.log: Any = None
        # per run, not per node: the live set and this graph's node statics, by node name
        self.live = instr.live
        self.statics = instr.statics_for(graph, inst is not None)
        if logging_on:
            self.log = _logger.bind(**{N.GRAPH_NAME: graph}, **({N.RUN_ID: run_id} if run_id else {}))
        if standalone:
            self.ctx = otel_context.get_current()
            return
        parent = parent_context(otel_context.get_current(), payload)
        if tracer is not None:
            self.span = start_run_span(self, parent, payload)
            self.ctx = trace.set_span_in_context(self.span, parent)
        else:
            self.ctx = parent
        if self.log is not None:
            safe_log(self.log, "debug", N.LOG_RUN_START)

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
        # the seam's guard, inline (this is the per-node hot path)
        try:
            return NodeObs(self, name, kind, stream, step, join, payload, model)
        except Exception as exc:
            internal_error("node.start", exc)
            return _hooks.NOOP_NODE

    @seam("run.channel")
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
            end_run_span(self, outcome, error, err, steps, result, ttft)
        if self.inst is not None:
            record_run(self, outcome, err, duration, ttft)
        if self.log is not None:
            log_run_end(self, outcome, err, duration, ttft)


class NodeObs(_hooks.NodeObserver):
    """One node run. Streaming-only fields (``n``, ``t_first``, ``t_last``, ``max_gap``,
    ``ev_count``) are set only for streaming nodes, the only ones that receive tokens."""

    __slots__ = (
        "capture",
        "ev_count",
        "ev_next",
        "max_gap",
        "n",
        "name",
        "owner",
        "run",
        "span",
        "static",
        "step",
        "stream",
        "t0",
        "t_first",
        "t_last",
    )

    # standalone node runs only (set by standalone_node()): a weak reference to the callback
    # that opened it; unset on engine node runs
    owner: weakref.ReferenceType[Any]

    def __init__(
        self,
        run: RunObs,
        name: str,
        kind: str,
        stream: bool,
        step: int,
        join: _hooks.JoinInfo | None,
        payload: dict[str, Any] | None,
        model: str | None = None,
    ) -> None:
        self.run = run
        instr = run.instr
        static = run.statics.get(name)
        if static is None or static.kind != kind or static.stream != stream or static.model != model:
            static = instr.node_static(run, name, kind, stream, model)
        self.static = static
        self.name = name = static.name
        self.stream = stream
        self.step = step
        self.capture = False
        if stream:
            self.n = 0
            self.t_first = self.t_last = self.max_gap = 0.0
            self.ev_count = 0
        tracer = run.tracer
        if tracer is not None:
            if join is None and not instr.capture:  # the common case, inline
                attributes = static.by_step.get(step)
                if attributes is None:
                    attributes = static.at_step(step)
                self.span = tracer.start_span(
                    static.span_name, context=run.ctx, kind=_INTERNAL, attributes=attributes
                )
            else:
                self.span = start_node_span(self, step, join, payload)
            self.ev_next = instr.first_event
        else:
            self.span = None
            self.ev_next = -1
        self.t0 = perf_counter()
        run.live.add(self)
        if run.log is not None:
            safe_log(run.log, "debug", N.LOG_NODE_START, **{N.NODE_NAME: name, N.NODE_KIND: kind, N.NODE_STEP: step})

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
            first_token_event(self, span)

    def _event(self, n: int, token: Any) -> None:
        settings = self.run.instr.settings
        token_event(self, n, token)
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
    @seam("late_token")
    def late_token(self) -> None:
        inst = self.run.inst
        if inst is not None:
            inst.late_tokens.add(1, self.static.base_attrs)

    # attach, detach and end carry the seam's guard inline (per-node hot path)
    def attach(self) -> object:
        try:
            t1 = _set_log_node(self)
            span = self.span
            return (t1, None if span is None else _attach(_in_context(span, self.run.ctx)))
        except Exception as exc:
            internal_error("attach", exc)
            return None

    def detach(self, token: object) -> None:
        if not isinstance(token, tuple):
            return
        t1, t2 = token
        try:
            try:
                if t2 is not None:
                    _detach(t2)
            finally:
                _state.LOG_NODE.reset(t1)
        except Exception as exc:
            internal_error("detach", exc)

    @seam("router_choice")
    def router_choice(self, choice: Any) -> None:
        span = self.span
        if span is None or choice is None:
            return
        if isinstance(choice, (list, tuple)):
            value: Any = [clean(str(c)) for c in choice]
        else:
            value = clean(str(choice))
        span.set_attribute(N.ROUTER_CHOICE, value)

    def end(
        self,
        outcome: str,
        error: BaseException | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        try:
            self.run.live.remove(self)
        except KeyError:
            return  # already ended (end exactly once)
        try:
            self._end(outcome, error, output)
        except Exception as exc:
            internal_error("node.end", exc)

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
        m = EndFigures(duration, n, ttft, tpot, rate, max_gap)
        # three writers, each guarded on its own: a failing one never skips the next
        if self.span is not None:
            try:
                end_node_span(self, outcome, error, err, output, m)
            except Exception as exc:
                internal_error("node.end", exc)
        if run.inst is not None:
            try:
                record_node(self, outcome, err, m)
            except Exception as exc:
                internal_error("node.metrics", exc)
        if run.log is not None:
            log_node_end(self, outcome, error, err, m)
