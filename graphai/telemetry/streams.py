"""``active_streams()``: the live in-flight view of node runs (also served on ``/streams``)."""

from __future__ import annotations

from time import perf_counter
from typing import Any

from graphai.telemetry import _state

__all__ = ["active_streams"]


def active_streams() -> list[dict[str, Any]]:
    """
    A snapshot of the node runs in progress (the live in-flight view): graph, run id, node,
    kind, tokens so far, seconds since start and since the last token. Safe from any thread.

    .. versionadded:: 0.1.0
    """
    instr = _state.INSTALLED[0]
    if instr is None:
        return []
    now = perf_counter()
    out = []
    for obs in instr.live_snapshot():
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
