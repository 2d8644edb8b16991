"""
Telemetry set-up for the demo: ``configure()`` with the demo's defaults, an in-memory span
exporter for the waterfall, a busy-port fallback for ``/metrics`` and OTLP log routing.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import graphai.telemetry
from graphai._demo.sim import SERVICE_NAME
from graphai._demo.view import Out
from graphai.telemetry import env

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from graphai.telemetry import TelemetryHandle


@dataclass
class Telemetry:
    handle: TelemetryHandle | None = None
    exporter: InMemorySpanExporter | None = None
    metrics_url: str | None = None
    otlp: str | None = None  # where spans go, when OTLP export is on
    export_stuck: bool = False  # an OTLP flush timed out: do not wait long at shutdown
    notes: list[str] = field(default_factory=list)


def port_in_use(host: str, port: int) -> bool:
    """True if ``host:port`` cannot be bound now (as the Prometheus server would bind it)."""
    if port == 0:
        return False
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False  # let the server report the bad host
    family, socktype, proto, _canon, addr = infos[0]
    with socket.socket(family, socktype, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError:
            return True
    return False


def _otlp_traces_on(cli_endpoint: str | None) -> bool:
    selection = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if selection and "otlp" not in [s.strip() for s in selection.split(",")]:
        return False
    return bool(
        cli_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


def _drop_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    import structlog

    raise structlog.DropEvent


def setup_telemetry(args: argparse.Namespace, out: Out) -> Telemetry:
    """``configure()`` with the demo's defaults, plus an in-memory span exporter."""
    tel = Telemetry()
    if args.no_telemetry:
        graphai.telemetry.uninstrument()
        tel.notes.append("telemetry off (--no-telemetry): no spans, no metrics")
        return tel
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )
    except ImportError:
        tel.notes.append(
            "telemetry: the OpenTelemetry SDK is not installed (the [otel] extra: "
            'pip install -e ".[otel]" from a checkout); running without spans and metrics'
        )
        return tel

    host, port = env.parse_addr(args.prometheus_addr, "--prometheus-addr")
    if port_in_use(host, port):
        out.line(
            out.paint(
                f"note: {host}:{port} is busy (another graphai demo or exporter running?); "
                "serving /metrics on a free port instead",
                "33",
            )
        )
        port = 0
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    otlp_on = _otlp_traces_on(args.otlp)
    try:
        handle = graphai.telemetry.configure(
            service_name=None if os.environ.get("OTEL_SERVICE_NAME") else SERVICE_NAME,
            otlp_endpoint=args.otlp,
            prometheus_addr=addr,
            logs=otlp_on,
            set_global=False,
        )
    except ImportError as exc:  # an [otel] exporter package is missing
        tel.notes.append(
            f"telemetry: {exc}; running without it"
        )
        return tel
    if handle.tracer_provider is None and handle.meter_provider is None:
        tel.notes.append("telemetry off (OTEL_SDK_DISABLED=true)")
        return tel
    tel.handle = handle
    tp = handle.tracer_provider
    if isinstance(tp, TracerProvider):
        tel.exporter = InMemorySpanExporter()
        tp.add_span_processor(SimpleSpanProcessor(tel.exporter))
    if handle.prometheus_addr:
        shown = handle.prometheus_addr.replace("0.0.0.0", "127.0.0.1")
        tel.metrics_url = f"http://{shown}/metrics"
    else:
        tel.notes.append(f"the /metrics endpoint could not be started on {addr}")
    if otlp_on:
        tel.otlp = (
            args.otlp
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        )
        if handle.logger_provider is not None:
            # graphai's own log lines (run/node end) go over OTLP too, not to the terminal
            import structlog

            from graphai.telemetry.logging import add_graph_context, add_otel_context

            structlog.configure(
                processors=[
                    structlog.processors.add_log_level,
                    add_otel_context,
                    add_graph_context,
                    handle.log_processor,
                    _drop_event,
                ],
                wrapper_class=structlog.make_filtering_bound_logger(20),
                cache_logger_on_first_use=False,
            )
    return tel
