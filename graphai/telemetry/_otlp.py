"""
OTLP export for :func:`graphai.telemetry.configure`: protocol selection (argument, then
``OTEL_EXPORTER_OTLP_{SIGNAL}_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``, default
``grpc``), whether a signal is exported at all, its endpoint, and the exporters themselves
(imported on first use: only the protocol in effect needs to be installed).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

from graphai._dist import INSTALL_OTEL
from graphai.errors import TelemetryConfigError
from graphai.telemetry import env

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "EXTRA_HINT",
    "PROTOCOLS",
    "SIGNALS",
    "env_value",
    "extra_missing",
    "log_exporter",
    "metric_exporter",
    "otlp_wanted",
    "select_protocol",
    "span_exporter",
]

PROTOCOLS: Final = ("grpc", "http/protobuf")
SIGNALS: Final = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}
EXTRA_HINT: Final = f"graphai.telemetry.configure() needs the [otel] extra: {INSTALL_OTEL}"


def extra_missing(exc: ImportError) -> ImportError | None:
    """The error to raise for ``exc``, a failed import of the SDK or an exporter: an
    ``ImportError`` naming the ``[otel]`` extra. ``None`` if ``exc`` is graphai's own."""
    missing = exc.name or ""
    if missing == "graphai" or missing.startswith("graphai."):
        return None
    return ImportError(f"{EXTRA_HINT} (missing: {missing or exc})", name=exc.name)


def env_value(name: str) -> str:
    """The variable ``name`` stripped; ``""`` if unset."""
    return os.environ.get(name, "").strip()


def select_protocol(signal: str, protocol: str | None) -> str:
    """The OTLP protocol in effect for ``signal``, checked (argument, then the variables)."""
    source = "otlp_protocol"
    if protocol is None:
        for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            if env_value(var):
                protocol, source = env_value(var), var
                break
    if protocol is not None and not isinstance(protocol, str):
        raise TelemetryConfigError(f"{source}={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    return env.parse_protocol(source, protocol or "grpc")


def otlp_wanted(signal: str, endpoint: str | None) -> bool:
    """An OTLP endpoint is configured for ``signal`` and ``OTEL_{SIGNAL}_EXPORTER`` allows otlp."""
    selection = env_value(f"OTEL_{signal.upper()}_EXPORTER")
    if selection and "otlp" not in [s.strip().lower() for s in selection.split(",")]:
        return False
    return bool(
        endpoint
        or env_value("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env_value(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def _endpoint(signal: str, protocol: str, endpoint: str | None) -> dict[str, Any]:
    """Exporter kwargs: the explicit endpoint as a base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT``),
    or nothing, so the exporter reads its own ``OTEL_*`` variables."""
    if not endpoint:
        return {}
    if protocol == "grpc":
        return {"endpoint": endpoint}
    return {"endpoint": f"{endpoint.rstrip('/')}/{SIGNALS[signal]}"}


def span_exporter(protocol: str, endpoint: str | None) -> SpanExporter:
    kw = _endpoint("traces", protocol, endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(**kw)


def metric_exporter(protocol: str, endpoint: str | None) -> MetricExporter:
    kw = _endpoint("metrics", protocol, endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(**kw)


def log_exporter(protocol: str, endpoint: str | None) -> LogRecordExporter:
    kw = _endpoint("logs", protocol, endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )

    return HttpLogExporter(**kw)
