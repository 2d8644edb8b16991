"""
The two records telemetry writers read: :class:`NodeStatic`, built once per node definition
(names, attribute dicts, metric labels), and :class:`EndFigures`, computed once at the end of
a node run and handed to the span, metric and log writers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from graphai.telemetry import names as N

__all__ = ["EndFigures", "NodeStatic"]


class NodeStatic:
    """What every run of one node shares, built once per node definition: its exportable name,
    span name and static attributes, metric label and the metric attribute dicts of the common
    case (outcome ok)."""

    __slots__ = (
        "attributes",
        "base_attrs",
        "by_step",
        "kind",
        "label",
        "model",
        "name",
        "ok_attrs",
        "span_name",
        "stream",
    )

    def __init__(
        self,
        name: str,
        span_name: str,
        attributes: dict[str, Any],
        label: str,
        kind: str,
        stream: bool,
        model: str | None,
        ok_attrs: dict[str, Any] | None,
        base_attrs: dict[str, Any] | None,
    ) -> None:
        self.name = name
        self.span_name = span_name
        self.attributes = attributes
        self.label = label
        self.kind = kind
        self.stream = stream
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


class EndFigures(NamedTuple):
    """A node run's figures, computed once at its end and handed to every writer."""

    duration: float
    n: int
    ttft: float | None
    tpot: float | None
    rate: float | None
    max_gap: float | None
