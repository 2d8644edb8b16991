"""
Every ``GRAPHAI_*`` environment variable: name, meaning, default and parser; and the checks
``configure()`` makes on the standard ``OTEL_*`` variables (:func:`check_otel_env`).

Read when ``graphai.telemetry.instrument()`` runs (the engine's first run does it) and by
``configure()``. Two modes:

- lenient (``from_env()``, what the default instrumentation and ``instrument()`` use): an invalid value is replaced
  by its default and logged once per process per (variable, value) as the warning
  ``telemetry.config_invalid`` with ``variable``, ``value`` and ``default``; the other variables
  are still read. ``import graphai`` never fails because of the environment.
- strict (``from_env(strict=True)``, what ``configure()`` uses): an invalid value raises
  :class:`graphai.errors.TelemetryConfigError` (a ``ValueError``) whose message starts with the
  variable and the value, e.g. ``GRAPHAI_TOKEN_EVENTS='bogus': expected one of capped, ...``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Final, TypeVar

from graphai._log import log_event
from graphai.errors import TelemetryConfigError
from graphai.telemetry import _semconv
from graphai.telemetry import names as N

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
GRAPHAI_PROMETHEUS_PORTS: Final = "GRAPHAI_PROMETHEUS_PORTS"
"""How many consecutive ports, from the port of ``GRAPHAI_PROMETHEUS_ADDR``, ``configure()`` tries
for ``/metrics`` (one per worker of a multi-process server). Default ``1``."""
OTEL_SEMCONV_STABILITY_OPT_IN: Final = _semconv.OTEL_SEMCONV_STABILITY_OPT_IN
"""OpenTelemetry's comma-separated stability opt-ins: ``gen_ai_latest_experimental`` switches the
GenAI names to the latest conventions (``Settings.genai_semconv``); other values are ignored."""

TOKEN_EVENT_POLICIES: Final = ("capped", "sampled", "all", "off")
GEN_AI_SEMCONV_MODES: Final = _semconv.MODES
"""``Settings.genai_semconv``: ``default`` (the GenAI names of semantic-conventions v1.41.0) or
``gen_ai_latest_experimental`` (semantic-conventions-genai v0.1.0)."""
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
    GRAPHAI_PROMETHEUS_PORTS,
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
    raise TelemetryConfigError(f"{name}={raw!r}: expected one of true/false/on/off/1/0")


def _number(name: str, default: float, minimum: float, integer: bool) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        v = int(raw) if integer else float(raw)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise TelemetryConfigError(f"{name}={raw!r}: expected {kind} >= {minimum}") from None
    if not v >= minimum:  # also NaN
        raise TelemetryConfigError(f"{name}={raw!r}: expected a value >= {minimum}")
    return v


def parse_addr(value: str, name: str = GRAPHAI_PROMETHEUS_ADDR) -> tuple[str, int]:
    """``host:port`` -> (host, port); ``[::1]:9464`` works too. Raises
    :class:`~graphai.errors.TelemetryConfigError` naming ``name``."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not host or int(port) > 65535:
        raise TelemetryConfigError(f"{name}={value!r}: expected host:port, e.g. 127.0.0.1:9464")
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
    genai_semconv: str = _semconv.DEFAULT
    """``default`` or ``gen_ai_latest_experimental`` (``OTEL_SEMCONV_STABILITY_OPT_IN``)."""


_T = TypeVar("_T")
_warned: set[tuple[str, str | None]] = set()
_warned_lock = threading.Lock()


def _lenient(strict: bool, name: str, default: _T, read: Callable[[], _T]) -> _T:
    """``read()``; on an invalid value: raise (strict) or warn once and return ``default``."""
    try:
        return read()
    except TelemetryConfigError:
        if strict:
            raise
    raw = os.environ.get(name)
    with _warned_lock:
        first = (name, raw) not in _warned
        _warned.add((name, raw))
    if first:
        log_event("warning", N.LOG_CONFIG_INVALID, variable=name, value=raw, default=default)
    return default


def _telemetry() -> str:
    raw = os.environ.get(GRAPHAI_TELEMETRY, "on")
    tel = raw.strip().lower()
    if tel not in _TRUE + _FALSE:
        raise TelemetryConfigError(f"{GRAPHAI_TELEMETRY}={raw!r}: expected on or off")
    return "on" if tel in _TRUE else "off"


def _policy() -> str:
    raw = os.environ.get(GRAPHAI_TOKEN_EVENTS, "capped")
    policy = raw.strip().lower()
    if policy not in TOKEN_EVENT_POLICIES:
        raise TelemetryConfigError(
            f"{GRAPHAI_TOKEN_EVENTS}={raw!r}: expected one of {', '.join(TOKEN_EVENT_POLICIES)}"
        )
    return policy


def _addr() -> str:
    addr = os.environ.get(GRAPHAI_PROMETHEUS_ADDR, DEFAULT_PROMETHEUS_ADDR)
    if addr.strip():
        parse_addr(addr)
    return addr.strip()


def from_env(strict: bool = False) -> Settings:
    """
    Read every ``GRAPHAI_*`` variable (and the standard content-capture switch and
    ``OTEL_SEMCONV_STABILITY_OPT_IN``).

    Args:
        strict: raise on an invalid value instead of using the default.

    Without ``strict`` an invalid value is replaced by its default and logged (once per
    process per variable and value) as the warning ``telemetry.config_invalid``, with
    ``variable``, ``value`` and ``default``; every other variable is still read.

    Raises:
        TelemetryConfigError: only with ``strict=True``; the message names the variable.
    """
    d = Settings()

    def num(name: str, default: float, minimum: float, integer: bool) -> float:
        return _lenient(strict, name, default, partial(_number, name, default, minimum, integer))

    def flag(name: str) -> bool:
        return _lenient(strict, name, False, partial(_bool, name, False))

    capture = [flag(GRAPHAI_CAPTURE_CONTENT), flag(OTEL_CAPTURE_CONTENT)]  # both checked
    return Settings(
        enabled=_lenient(strict, GRAPHAI_TELEMETRY, "on", _telemetry) == "on",
        token_events=_lenient(strict, GRAPHAI_TOKEN_EVENTS, d.token_events, _policy),
        token_events_max=int(num(GRAPHAI_TOKEN_EVENTS_MAX, d.token_events_max, 0, True)),
        capture_content=any(capture),
        capture_max_chars=int(num(GRAPHAI_CAPTURE_MAX_CHARS, d.capture_max_chars, 1, True)),
        stall_after_s=num(GRAPHAI_STALL_AFTER_S, d.stall_after_s, 0.0, False),
        label_limit=int(num(GRAPHAI_METRICS_LABEL_LIMIT, d.label_limit, 1, True)),
        prometheus_addr=_lenient(strict, GRAPHAI_PROMETHEUS_ADDR, d.prometheus_addr, _addr),
        genai_semconv=_genai_semconv(strict),
    )


def _genai_semconv(strict: bool) -> str:
    """The GenAI conventions mode; an invalid ``gen_ai`` value is reported like any invalid
    value, and leniently the rest of the list still counts."""
    raw = os.environ.get(OTEL_SEMCONV_STABILITY_OPT_IN)
    mode, bad = _semconv.parse_opt_in(raw)
    if not bad or raw is None:
        return mode

    def invalid() -> str:
        raise TelemetryConfigError(_semconv.invalid_message(raw, bad))

    return _lenient(strict, OTEL_SEMCONV_STABILITY_OPT_IN, mode, invalid)


# -- standard OTEL_* variables, checked by configure() ---------------------------------------------
OTLP_PROTOCOLS: Final = ("grpc", "http/protobuf")
"""What ``OTEL_EXPORTER_OTLP_PROTOCOL`` (and ``OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL``) accept."""
TRACES_SAMPLERS: Final = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)  # fmt: skip
"""The ``OTEL_TRACES_SAMPLER`` names the SDK's ``TracerProvider`` knows (case-insensitive)."""
_RATIO_SAMPLERS: Final = ("traceidratio", "parentbased_traceidratio")
_SIGNAL_NAMES: Final = ("TRACES", "METRICS", "LOGS")
_BATCH_DEFAULTS: Final = {"OTEL_BSP": (2048, 512), "OTEL_BLRP": (2048, 512)}  # queue, batch
_OTEL_POSITIVE_INTEGERS: Final = tuple(
    f"{prefix}_{name}"
    for prefix in _BATCH_DEFAULTS
    for name in ("SCHEDULE_DELAY", "MAX_QUEUE_SIZE", "MAX_EXPORT_BATCH_SIZE", "EXPORT_TIMEOUT")
)
"""Read by the SDK's batch processors with ``int()``: milliseconds or sizes, > 0."""
_OTEL_POSITIVE_NUMBERS: Final = (
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRIC_EXPORT_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    *(f"OTEL_EXPORTER_OTLP_{s}_TIMEOUT" for s in _SIGNAL_NAMES),
)
"""Read with ``float()``: milliseconds (``OTEL_METRIC_*``) or seconds (the Python OTLP
exporters' ``*_TIMEOUT``), > 0 and finite (the metric interval may be ``inf``: no export)."""
OTEL_CHECKED: Final = (
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    *(f"OTEL_EXPORTER_OTLP_{s}_PROTOCOL" for s in _SIGNAL_NAMES),
    *_OTEL_POSITIVE_NUMBERS,
    *_OTEL_POSITIVE_INTEGERS,
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
)
"""Every standard variable :func:`check_otel_env` validates."""


def parse_protocol(name: str, value: str) -> str:
    """The OTLP protocol ``value`` normalised; raises naming ``name`` (variable or argument)."""
    p = value.strip().lower()
    if p not in OTLP_PROTOCOLS:
        raise TelemetryConfigError(
            f"{name}={value!r}: expected one of {', '.join(OTLP_PROTOCOLS)} "
            "(the Python OTLP exporters do not support http/json)"
        )
    return p


def _otel_number(name: str, raw: str, integer: bool) -> float:
    try:
        v: float = int(raw) if integer else float(raw)
    except ValueError:
        v = math.nan
    infinite_ok = name == "OTEL_METRIC_EXPORT_INTERVAL"
    if not v > 0 or (math.isinf(v) and not infinite_ok):
        if integer:
            expected = "an integer > 0"
        elif name.startswith("OTEL_METRIC_"):
            expected = "a number of milliseconds > 0"
        else:
            expected = "a number of seconds > 0"
        raise TelemetryConfigError(f"{name}={raw!r}: expected {expected}")
    return v


def check_otel_env() -> None:
    """
    Validate the standard ``OTEL_*`` variables the SDK would otherwise ignore (with a warning)
    or fail on half-way through ``configure()``: everything in :data:`OTEL_CHECKED` but the
    protocols, which ``configure()`` checks with :func:`parse_protocol` (the one in effect per
    signal: the ``otlp_protocol`` argument, else ``OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL``, else
    ``OTEL_EXPORTER_OTLP_PROTOCOL``), whether or not OTLP export is configured. A set but empty
    numeric variable or sampler counts as invalid (the SDK cannot read it); an empty sampler
    argument counts as unset (rate 1.0).

    Raises:
        TelemetryConfigError: the first invalid variable; the message names it and its value.
    """
    environ = os.environ
    for name in _OTEL_POSITIVE_NUMBERS:
        if name in environ:
            _otel_number(name, environ[name], integer=False)
    for prefix, (queue_default, batch_default) in _BATCH_DEFAULTS.items():
        for name in _OTEL_POSITIVE_INTEGERS:
            if name.startswith(f"{prefix}_") and name in environ:
                _otel_number(name, environ[name], integer=True)
        queue_var, batch_var = f"{prefix}_MAX_QUEUE_SIZE", f"{prefix}_MAX_EXPORT_BATCH_SIZE"
        queue = int(environ.get(queue_var, queue_default))
        batch = int(environ.get(batch_var, batch_default))
        if batch > queue:
            raise TelemetryConfigError(
                f"{batch_var}={environ.get(batch_var, str(batch_default))!r}: expected at most "
                f"{queue_var} ({queue})"
            )
    sampler = environ.get("OTEL_TRACES_SAMPLER")
    if sampler is not None and sampler.lower() not in TRACES_SAMPLERS:
        raise TelemetryConfigError(
            f"OTEL_TRACES_SAMPLER={sampler!r}: expected one of {', '.join(TRACES_SAMPLERS)}"
        )
    arg = environ.get("OTEL_TRACES_SAMPLER_ARG", "")
    if sampler is not None and sampler.lower() in _RATIO_SAMPLERS and arg.strip():
        try:
            rate = float(arg)
        except ValueError:
            rate = math.nan
        if not 0.0 <= rate <= 1.0:
            raise TelemetryConfigError(
                f"OTEL_TRACES_SAMPLER_ARG={arg!r}: expected a number from 0 to 1 "
                f"(the sampling ratio of OTEL_TRACES_SAMPLER={sampler!r})"
            )
