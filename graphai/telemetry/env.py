"""
Every ``GRAPHAI_*`` environment variable: name, meaning, default and parser.

Read when ``graphai.telemetry.instrument()`` runs (graphai does it at import) and on
``reload_settings()``; an invalid value raises ``ValueError`` naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

GRAPHAI_TELEMETRY: Final = "GRAPHAI_TELEMETRY"
"""``on`` / ``off``: off means no spans, metrics or logs from the engine. Default ``on``."""
GRAPHAI_TOKEN_EVENTS: Final = "GRAPHAI_TOKEN_EVENTS"
"""Per-token span events: ``capped`` (default) / ``sampled`` / ``all`` / ``off``."""
GRAPHAI_TOKEN_EVENTS_MAX: Final = "GRAPHAI_TOKEN_EVENTS_MAX"
"""Cap of token events per node run for ``capped``/``sampled``. Default ``100``."""
GRAPHAI_CAPTURE_CONTENT: Final = "GRAPHAI_CAPTURE_CONTENT"
"""Token text and node input/output on spans. Default ``false``."""
OTEL_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Standard GenAI switch with the same effect as ``GRAPHAI_CAPTURE_CONTENT``."""
GRAPHAI_CAPTURE_MAX_CHARS: Final = "GRAPHAI_CAPTURE_MAX_CHARS"
"""Truncation of captured text per value. Default ``4096``."""
GRAPHAI_STALL_AFTER_S: Final = "GRAPHAI_STALL_AFTER_S"
"""Seconds without a token before a stream counts as stalled. Default ``10``."""
GRAPHAI_METRICS_LABEL_LIMIT: Final = "GRAPHAI_METRICS_LABEL_LIMIT"
"""Distinct values per metric attribute before ``_OTHER``. Default ``256``."""
GRAPHAI_PROMETHEUS_ADDR: Final = "GRAPHAI_PROMETHEUS_ADDR"
"""``host:port`` of the ``/metrics`` endpoint ``configure()`` starts. Default ``127.0.0.1:9464``."""

TOKEN_EVENT_POLICIES: Final = ("capped", "sampled", "all", "off")
SAMPLED_HEAD: Final = 32
"""``sampled``: every token up to this index, then every ``SAMPLED_EVERY``-th."""
SAMPLED_EVERY: Final = 64
DEFAULT_PROMETHEUS_ADDR: Final = "127.0.0.1:9464"

ALL: Final = (
    GRAPHAI_TELEMETRY,
    GRAPHAI_TOKEN_EVENTS,
    GRAPHAI_TOKEN_EVENTS_MAX,
    GRAPHAI_CAPTURE_CONTENT,
    GRAPHAI_CAPTURE_MAX_CHARS,
    GRAPHAI_STALL_AFTER_S,
    GRAPHAI_METRICS_LABEL_LIMIT,
    GRAPHAI_PROMETHEUS_ADDR,
)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected one of true/false/on/off/1/0")


def _number(name: str, default: float, minimum: float, integer: bool) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        v = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name}={raw!r}: expected {kind} >= {minimum}") from None
    if v < minimum:
        raise ValueError(f"{name}={raw!r}: expected a value >= {minimum}")
    return v


def parse_addr(value: str, name: str = GRAPHAI_PROMETHEUS_ADDR) -> tuple[str, int]:
    """``host:port`` -> (host, port); ``[::1]:9464`` works too."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"{name}={value!r}: expected host:port, e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    token_events: str = "capped"
    token_events_max: int = 100
    capture_content: bool = False
    capture_max_chars: int = 4096
    stall_after_s: float = 10.0
    label_limit: int = 256
    prometheus_addr: str = DEFAULT_PROMETHEUS_ADDR


def from_env() -> Settings:
    """Read every ``GRAPHAI_*`` variable (and the standard content-capture switch)."""
    tel = os.environ.get(GRAPHAI_TELEMETRY, "on").strip().lower()
    if tel not in _TRUE + _FALSE:
        raise ValueError(f"{GRAPHAI_TELEMETRY}={tel!r}: expected on or off")
    policy = os.environ.get(GRAPHAI_TOKEN_EVENTS, "capped").strip().lower()
    if policy not in TOKEN_EVENT_POLICIES:
        raise ValueError(
            f"{GRAPHAI_TOKEN_EVENTS}={policy!r}: expected one of {', '.join(TOKEN_EVENT_POLICIES)}"
        )
    addr = os.environ.get(GRAPHAI_PROMETHEUS_ADDR, DEFAULT_PROMETHEUS_ADDR)
    if addr.strip():
        parse_addr(addr)
    return Settings(
        enabled=tel in _TRUE,
        token_events=policy,
        token_events_max=int(_number(GRAPHAI_TOKEN_EVENTS_MAX, 100, 0, True)),
        capture_content=_bool(GRAPHAI_CAPTURE_CONTENT, False) or _bool(OTEL_CAPTURE_CONTENT, False),
        capture_max_chars=int(_number(GRAPHAI_CAPTURE_MAX_CHARS, 4096, 1, True)),
        stall_after_s=_number(GRAPHAI_STALL_AFTER_S, 10.0, 0.0, False),
        label_limit=int(_number(GRAPHAI_METRICS_LABEL_LIMIT, 256, 1, True)),
        prometheus_addr=addr.strip(),
    )
