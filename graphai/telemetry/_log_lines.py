"""The structlog lines of a run and a node run, written from their end figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphai.telemetry import names as N
from graphai.telemetry._guard import current_span, redacted_trace, safe_log, seam

if TYPE_CHECKING:
    from graphai.telemetry._observers import NodeObs, RunObs
    from graphai.telemetry._records import EndFigures

__all__ = ["log_node_end", "log_run_end"]


@seam("run.log")
def log_run_end(
    run: RunObs, outcome: str, err: str | None, duration: float, ttft: float | None
) -> None:
    with current_span(run.span):
        run.log.info(
            N.LOG_RUN_END,
            outcome=outcome,
            duration_s=round(duration, 6),
            ttft_s=None if ttft is None else round(ttft, 6),
            tokens=run.tokens,
            **({N.ERROR_TYPE: err} if err else {}),
        )


@seam("node.log")
def log_node_end(
    node: NodeObs, outcome: str, error: BaseException | None, err: str | None, m: EndFigures
) -> None:
    log = node.run.log
    fields: dict[str, Any] = {
        N.NODE_NAME: node.name,
        N.NODE_KIND: node.static.kind,
        N.NODE_STEP: node.step,
        "outcome": outcome,
        "duration_s": round(m.duration, 6),
    }
    if node.stream:
        fields["ttft_s"] = None if m.ttft is None else round(m.ttft, 6)
        fields["tokens"] = m.n
        fields["token_rate"] = None if m.rate is None else round(m.rate, 3)
    if err is not None:
        fields[N.ERROR_TYPE] = err
    with current_span(node.span):
        if err is not None and error is not None:
            if node.run.instr.settings.capture_content:
                safe_log(log, "error", N.LOG_NODE_ERROR, exc_info=error, **fields)
            else:  # no message: it may quote inputs
                safe_log(log, "error", N.LOG_NODE_ERROR, exception=redacted_trace(error), **fields)
        log.info(N.LOG_NODE_END, **fields)
