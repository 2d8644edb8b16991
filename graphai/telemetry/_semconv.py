"""
The GenAI conventions mode: which GenAI names graphai emits (``names.py`` has both sets and
where each was checked).

The conventions' transition rule: an instrumentation keeps the GenAI names it emitted by
default, and emits the latest ones instead (never both) when ``OTEL_SEMCONV_STABILITY_OPT_IN``,
a comma-separated list shared by every OpenTelemetry instrumentation in the process, holds
``gen_ai_latest_experimental``. Values for other instrumentations (``http``, ``database/dup``
...) are ignored, as OpenTelemetry's own instrumentations ignore ours; a ``gen_ai``-prefixed
value other than ``gen_ai_latest_experimental`` (a typo, a case variant, a ``/dup`` that the
GenAI rule does not define) is an invalid value: a warning and the default leniently, an error in
``configure()``, like every ``GRAPHAI_*`` variable (``env.from_env``).

The variable is read with the other settings (first run, ``instrument()``, ``configure()``),
never at import, and resolved once per instrumentation into a frozen :class:`Conventions`
record: the writers read names from it, and :class:`GenAIAttributes` builds each metric
attribute dict once per node definition and error type, so nothing is decided per node run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from graphai.errors import TelemetryConfigError
from graphai.telemetry import names as N

__all__ = [
    "DEFAULT",
    "LATEST",
    "MODES",
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "Conventions",
    "GenAIAttributes",
    "conventions",
    "parse_opt_in",
]

OTEL_SEMCONV_STABILITY_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
DEFAULT: Final = "default"
"""Mode: the GenAI names of semantic-conventions v1.41.0 (what graphai always emitted)."""
LATEST: Final = "gen_ai_latest_experimental"
"""Mode and opt-in value: the GenAI names of semantic-conventions-genai v0.1.0."""
MODES: Final = (DEFAULT, LATEST)
RUN: Final = "run"
"""Kind key of a run's attributes in :class:`GenAIAttributes` (not a node kind)."""


@dataclass(frozen=True, eq=False)
class Conventions:
    """The GenAI names of one mode. Mode-independent names stay in ``names.py``."""

    mode: str
    run_name_key: str
    """Attribute of the run span that carries the graph name."""
    llm_duration: str
    llm_ttfc: str
    llm_tpoc: str
    run_duration: str | None
    """Histogram of runs (``None``: runs record only ``graphai.graph.duration``)."""
    node_durations: Mapping[str, str]
    """Node kind -> its GenAI duration histogram (``llm`` has its own three); a plain dict,
    read once per node run, never changed."""

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every GenAI metric this mode can record."""
        extra = (self.run_duration,) if self.run_duration else ()
        nodes = tuple(self.node_durations.values())
        return (self.llm_duration, self.llm_ttfc, self.llm_tpoc, *extra, *nodes)


DEFAULT_CONVENTIONS: Final = Conventions(
    mode=DEFAULT,
    run_name_key=N.GEN_AI_WORKFLOW_NAME,
    llm_duration=N.GENAI_OPERATION_DURATION,
    llm_ttfc=N.GENAI_TTFC,
    llm_tpoc=N.GENAI_TPOC,
    run_duration=None,
    node_durations={},
)
LATEST_CONVENTIONS: Final = Conventions(
    mode=LATEST,
    run_name_key=N.GEN_AI_AGENT_NAME,
    llm_duration=N.GENAI_INFERENCE_DURATION,
    llm_ttfc=N.GENAI_INFERENCE_TTFC,
    llm_tpoc=N.GENAI_INFERENCE_TPOC,
    run_duration=N.GENAI_INVOKE_AGENT_DURATION,
    node_durations={"agent": N.GENAI_INVOKE_AGENT_DURATION, "tool": N.GENAI_EXECUTE_TOOL_DURATION},
)
_BY_MODE: Final = {DEFAULT: DEFAULT_CONVENTIONS, LATEST: LATEST_CONVENTIONS}
GENAI_HISTOGRAMS: Final = tuple(
    dict.fromkeys((*DEFAULT_CONVENTIONS.metrics, *LATEST_CONVENTIONS.metrics))
)
"""Every GenAI histogram of either mode (the instruments are created for both: one never
recorded is never exported)."""


def conventions(mode: str) -> Conventions:
    """The record of ``mode`` (``Settings.genai_semconv``)."""
    try:
        return _BY_MODE[mode]
    except KeyError:
        raise TelemetryConfigError(
            f"Settings.genai_semconv={mode!r}: expected one of {', '.join(MODES)}"
        ) from None


def parse_opt_in(raw: str | None) -> tuple[str, tuple[str, ...]]:
    """The mode an ``OTEL_SEMCONV_STABILITY_OPT_IN`` value selects, and its ``gen_ai`` values
    that are not ``gen_ai_latest_experimental`` (invalid). Split on commas, each value stripped
    and compared exactly, as OpenTelemetry's instrumentations do."""
    if not raw:
        return DEFAULT, ()
    values = [v.strip() for v in raw.split(",")]
    mode = LATEST if LATEST in values else DEFAULT
    bad = tuple(v for v in values if v != LATEST and v.lower().startswith("gen_ai"))
    return mode, bad


def invalid_message(raw: str, bad: tuple[str, ...]) -> str:
    """The error of an invalid ``OTEL_SEMCONV_STABILITY_OPT_IN``: variable, value, the fix."""
    return (
        f"{OTEL_SEMCONV_STABILITY_OPT_IN}={raw!r}: expected {LATEST!r} as the only gen_ai value "
        f"(exact spelling, comma-separated from other instrumentations' values), "
        f"got {', '.join(repr(v) for v in bad)}"
    )


class GenAIAttributes:
    """The GenAI metric attribute dicts of one instrumentation, built once per distinct
    (kind, label, model, error type) and shared (read-only). Labels are the already guarded
    graph or node label; model and error type pass the cardinality guard here."""

    __slots__ = ("_cache", "_guard")

    def __init__(self, guard: Callable[[str, str], str]) -> None:
        self._guard = guard
        self._cache: dict[tuple[str, str, str | None, str | None], dict[str, Any]] = {}

    def __call__(self, kind: str, label: str, model: str | None, err: str | None) -> dict[str, Any]:
        key = (kind, label, model, err)
        d = self._cache.get(key)
        if d is None:
            d = self._build(kind, label, model, err)
            if len(self._cache) < 100_000:
                self._cache[key] = d
        return d

    def _build(self, kind: str, label: str, model: str | None, err: str | None) -> dict[str, Any]:
        d: dict[str, Any]
        if kind == "llm":
            d = {N.GEN_AI_OPERATION_NAME: N.OP_CHAT}
            if model:
                d[N.GEN_AI_REQUEST_MODEL] = self._guard(N.GEN_AI_REQUEST_MODEL, model)
        elif kind == "tool":
            d = {N.GEN_AI_TOOL_NAME: label, N.GEN_AI_TOOL_TYPE: N.TOOL_TYPE_FUNCTION}
        else:  # agent node or run: both invoke_agent (one span type since v0.1.0)
            op = N.OP_INVOKE_WORKFLOW if kind == RUN else N.OP_INVOKE_AGENT
            d = {N.GEN_AI_OPERATION_NAME: op, N.GEN_AI_AGENT_NAME: label}
        if err is not None:
            d[N.ERROR_TYPE] = self._guard(N.ERROR_TYPE, err)
        return d
