"""
Tracing: span names, the run and node span lifecycle (start, token events under the event policy,
end exactly once) written from the observers' state and a node's end figures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from graphai.telemetry import names as N
from graphai.telemetry._guard import record_exception, seam, truncate

if TYPE_CHECKING:
    from graphai._hooks import JoinInfo
    from graphai.telemetry._observers import NodeObs, RunObs
    from graphai.telemetry._records import EndFigures

__all__ = [
    "end_node_span",
    "end_run_span",
    "first_token_event",
    "parent_context",
    "span_name",
    "start_node_span",
    "start_run_span",
    "token_event",
]


# end attributes of a node run without tokens, error or captured output, shared (read-only)
_OUTCOME_ONLY: dict[str, dict[str, Any]] = {
    o: {N.NODE_OUTCOME: o} for o in (N.OUTCOME_OK, N.OUTCOME_CANCELLED)
}


def span_name(name: str, kind: str, model: str | None) -> tuple[str, dict[str, Any]]:
    """A node's span name and GenAI attributes by kind (``agent``, ``tool``, ``llm``)."""
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


def parent_context(current: Any, payload: dict[str, Any] | None) -> Any:
    """The run's parent: the current context, or a W3C ``traceparent`` in the input when no
    span is current (a run started from a queue message, say)."""
    if (
        payload is not None
        and "traceparent" in payload
        and trace.get_current_span(current) is trace.INVALID_SPAN
    ):
        tp = payload.get("traceparent")
        if isinstance(tp, str):
            return extract({"traceparent": tp, "tracestate": str(payload.get("tracestate", ""))})
    return current


def start_run_span(run: RunObs, parent: Any, payload: dict[str, Any] | None) -> Any:
    instr = run.instr
    settings = instr.settings
    attributes: dict[str, Any] = {
        N.GEN_AI_OPERATION_NAME: N.OP_INVOKE_WORKFLOW,
        instr.conv.run_name_key: run.graph,  # gen_ai.workflow.name, or gen_ai.agent.name (latest)
        N.GRAPH_NAME: run.graph,
        N.RUN_ID: run.run_id,
    }
    if settings.capture_content and payload is not None:
        attributes[N.GEN_AI_INPUT_MESSAGES] = truncate(payload, settings.capture_max_chars)
    return run.tracer.start_span(
        f"{N.RUN_SPAN_PREFIX} {run.graph}",
        context=parent,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
    )


@seam("run.end")
def end_run_span(
    run: RunObs,
    outcome: str,
    error: BaseException | None,
    err: str | None,
    steps: int,
    result: dict[str, Any] | None,
    ttft: float | None,
) -> None:
    span = run.span
    settings = run.instr.settings
    try:
        attributes: dict[str, Any] = {
            N.RUN_OUTCOME: outcome,
            N.RUN_OUTPUT_TOKENS: run.tokens,
            N.RUN_STEPS: steps,
        }
        if ttft is not None:
            attributes[N.RUN_TTFT] = ttft
        if err is not None:
            attributes[N.ERROR_TYPE] = err
        if settings.capture_content and result is not None:
            attributes[N.GEN_AI_OUTPUT_MESSAGES] = truncate(result, settings.capture_max_chars)
        _finish(span, attributes, err, error, settings.capture_content)
    finally:
        span.end()


def _finish(
    span: Any, attributes: dict[str, Any], err: str | None, error: BaseException | None, capture: bool
) -> None:
    """The end attributes of a run or node span, and on errors its status and exception event."""
    span.set_attributes(attributes)
    if err is not None and error is not None:
        span.set_status(Status(StatusCode.ERROR, err))
        record_exception(span, error, capture)


def start_node_span(
    node: NodeObs, step: int, join: JoinInfo | None, payload: dict[str, Any] | None
) -> Any:
    """Start the node's span (under the run span); sets ``node.capture``."""
    run = node.run
    static = node.static
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
    settings = run.instr.settings
    if settings.capture_content and payload is not None:
        attributes = attributes.copy()
        attributes[N.NODE_INPUT] = truncate(
            {k: v for k, v in payload.items() if k != "upstream"}, settings.capture_max_chars
        )
        node.capture = True
    return run.tracer.start_span(
        static.span_name, context=run.ctx, kind=SpanKind.INTERNAL, attributes=attributes, links=links
    )


@seam("event.first")
def first_token_event(node: NodeObs, span: Any) -> None:
    span.add_event(N.EVENT_FIRST_TOKEN, {N.TOKEN_INDEX: 0})


@seam("event.token")
def token_event(node: NodeObs, n: int, token: Any) -> None:
    attributes: dict[str, Any] = {
        N.TOKEN_INDEX: n,
        N.TOKEN_SIZE: len(token) if isinstance(token, str) else 0,
    }
    if node.capture and isinstance(token, str):
        attributes[N.TOKEN_TEXT] = truncate(token, node.run.instr.settings.capture_max_chars)
    node.span.add_event(N.EVENT_TOKEN, attributes)


def end_node_span(
    node: NodeObs,
    outcome: str,
    error: BaseException | None,
    err: str | None,
    output: dict[str, Any] | None,
    m: EndFigures,
) -> None:
    """The node span's end attributes, status and exception event; the span ends whatever
    happens. Unguarded: the observer calls it inside the seam's guard (``node.end``)."""
    span = node.span
    settings = node.run.instr.settings
    try:
        if not node.stream and err is None and not node.capture:  # the common case
            span.set_attributes(_OUTCOME_ONLY.get(outcome) or {N.NODE_OUTCOME: outcome})
            return
        attributes: dict[str, Any] = {N.NODE_OUTCOME: outcome}
        if node.stream:
            attributes[N.NODE_OUTPUT_TOKENS] = m.n
            attributes[N.NODE_EVENTS_DROPPED] = m.n - node.ev_count
            if m.ttft is not None:
                attributes[N.GEN_AI_RESPONSE_TTFC] = m.ttft
            if m.tpot is not None:
                attributes[N.NODE_TPOT] = m.tpot
                attributes[N.NODE_MAX_GAP] = m.max_gap
        if err is not None:
            attributes[N.ERROR_TYPE] = err
        if node.capture and output is not None:
            attributes[N.NODE_OUTPUT] = truncate(output, settings.capture_max_chars)
        _finish(span, attributes, err, error, settings.capture_content)
    finally:
        span.end()
