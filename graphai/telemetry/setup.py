"""
SDK, OTLP and Prometheus wiring for graphai's telemetry (extra ``[otel]``).

With the modules it uses (``_otlp``: OTLP exporters; ``_prometheus``: the ``/metrics``
endpoint; ``_handle``: :class:`TelemetryHandle`; ``_watch``: export failure reports), the only
part of graphai that imports the OpenTelemetry SDK; ``graphai.telemetry.configure`` imports it
on first call (without the extra: an ``ImportError`` naming it). It builds providers from the
standard ``OTEL_*`` variables, optionally makes them global, hands them to graphai's
instrumentation and returns a :class:`TelemetryHandle` that flushes and shuts everything down
within a time budget.

Typical use::

    handle = graphai.telemetry.configure(service_name="my-app")
    graphai.telemetry.logging.configure_logging(json=True, extra_processors=[handle.log_processor])
    ...
    handle.shutdown()

(or put ``handle.log_processor`` in your own ``structlog.configure(processors=[...])`` chain,
before ``format_exc_info`` and the renderer).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import _logs, trace
from opentelemetry import metrics as metrics_api

from graphai.telemetry._otlp import extra_missing

try:  # the [otel] extra
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import (
        SERVICE_INSTANCE_ID,
        SERVICE_NAME,
        OTELResourceDetector,
        Resource,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
except ImportError as _exc:
    raise (extra_missing(_exc) or _exc) from _exc

from graphai._log import log_event
from graphai.errors import TelemetryConfigError
from graphai.telemetry import _otlp, env
from graphai.telemetry import names as N
from graphai.telemetry._handle import (
    TelemetryHandle,
    default_instance_id,
    is_retired,
    take_instrumentation,
)
from graphai.telemetry._prometheus import Rebind, check_ports, ports_from_env, start_prometheus
from graphai.telemetry._watch import WatchedLogExporter, WatchedMetricExporter, WatchedSpanExporter
from graphai.telemetry.otel_logs import OTelLogsProcessor
from graphai.telemetry.runtime import instrument, is_instrumented

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["OTelLogsProcessor", "TelemetryHandle", "configure"]

LOG_PROVIDERS_EXIST: Final = N.LOG_PROVIDERS_EXIST
LOG_PROMETHEUS_FAILED: Final = N.LOG_PROMETHEUS_FAILED

PROTOCOLS: Final = _otlp.PROTOCOLS
_NOOP_PROVIDERS: Final = frozenset(
    {"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider",
     "ProxyMeterProvider", "ProxyLoggerProvider", "NoOpLoggerProvider"}
)  # fmt: skip


def _prometheus_target(prometheus_addr: str | Literal[False] | None) -> tuple[str, int] | None:
    if prometheus_addr is False or prometheus_addr == "":
        return None
    if prometheus_addr is None:
        raw = os.environ.get(env.GRAPHAI_PROMETHEUS_ADDR, env.DEFAULT_PROMETHEUS_ADDR)
        return env.parse_addr(raw) if raw.strip() else None
    if not isinstance(prometheus_addr, str):
        raise TelemetryConfigError(
            f"prometheus_addr={prometheus_addr!r}: expected 'host:port', False or None"
        )
    return env.parse_addr(prometheus_addr, "prometheus_addr")


def _resource(service_name: str | None) -> tuple[Resource, bool]:
    """The SDK resource, plus ``service.instance.id`` = ``<hostname>-<pid>`` unless
    ``OTEL_RESOURCE_ATTRIBUTES`` sets one; and whether graphai chose it (then a forked child
    renews it). Every worker of a multi-process server thus reports under its own id."""
    resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
    try:
        user_set = SERVICE_INSTANCE_ID in OTELResourceDetector().detect().attributes
    except Exception:  # a malformed variable: the SDK already warned about it
        user_set = False
    if user_set:
        return resource, False
    return resource.merge(Resource({SERVICE_INSTANCE_ID: default_instance_id()})), True


def _unset(provider: object) -> bool:
    return type(provider).__name__ in _NOOP_PROVIDERS


def _is_real(provider: object) -> bool:
    return not _unset(provider) and not is_retired(provider)


def configure(
    *,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_addr: str | Literal[False] | None = None,
    prometheus_ports: int | None = None,
    traces: bool = True,
    metrics: bool = True,
    logs: bool = True,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics_api.MeterProvider | None = None,
    logger_provider: _logs.LoggerProvider | None = None,
    set_global: bool = True,
    metric_export_interval_ms: int | None = None,
) -> TelemetryHandle:
    """
    Set up the OpenTelemetry SDK for graphai: providers, OTLP export, Prometheus ``/metrics``.

    Everything not passed here comes from the standard variables: ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` (resource), ``OTEL_EXPORTER_OTLP_*`` (endpoint, per-signal
    endpoints, protocol, headers, timeout, compression, TLS), ``OTEL_TRACES_SAMPLER``,
    ``OTEL_BSP_*``, ``OTEL_BLRP_*``, ``OTEL_METRIC_EXPORT_INTERVAL`` and ``OTEL_SDK_DISABLED``
    (``true``: nothing is set up and the handle does nothing). OTLP export of a signal starts
    only when an endpoint is configured for it (argument, ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT``) and ``OTEL_{SIGNAL}_EXPORTER`` does not exclude
    ``otlp``.

    Existing providers are never replaced. With ``set_global=True``, a global provider the
    application already set (an SDK or any other real provider) is used as it is: graphai
    reports to it, no exporter or reader is added to it (an SDK ``MeterProvider`` cannot take
    new readers, so no ``/metrics`` endpoint is started either), it is not shut down, and a
    ``telemetry.providers_exist`` warning is logged. Providers passed as arguments are treated
    the same way, without the warning. With ``set_global=False`` no global is read or set; the
    providers only go to graphai.

    ``configure()`` never calls ``structlog.configure()``: add ``handle.log_processor`` to the
    application's processor chain (before the renderer) to send its logs over OTLP.

    Args:
        service_name: ``service.name``; overrides ``OTEL_SERVICE_NAME``.
        otlp_endpoint: OTLP base URL (``http://host:4317`` for gRPC, ``http://host:4318`` for
            HTTP, where ``/v1/{signal}`` is appended); overrides the variables.
        otlp_protocol: ``grpc`` (default) or ``http/protobuf``; overrides
            ``OTEL_EXPORTER_OTLP_PROTOCOL``.
        prometheus_addr: ``host:port`` of the ``/metrics`` endpoint (port ``0`` picks a free
            one); ``None`` reads ``GRAPHAI_PROMETHEUS_ADDR`` (default ``127.0.0.1:9464``);
            ``False`` or ``""`` starts none. The bound address is logged
            (``telemetry.prometheus_started``). A port in use logs ``telemetry.prometheus_failed``
            (naming docs/operations.md, "Multi-worker servers") and continues without it.
        prometheus_ports: how many consecutive ports, from the one of ``prometheus_addr``, to
            try; the first free one is used: one ``/metrics`` per worker of ``uvicorn
            --workers N`` / gunicorn with ``N``. ``None`` reads ``GRAPHAI_PROMETHEUS_PORTS``
            (default 1: that port only, so a scrape config never silently points at another
            process).
        traces, metrics, logs: set up this signal; ``False`` builds nothing for it (graphai then
            follows the global provider, a no-op unless the application sets one).
        tracer_provider, meter_provider, logger_provider: use these instead of building them.
        set_global: make the built providers the process-wide OpenTelemetry globals.
        metric_export_interval_ms: OTLP metric export interval; default
            ``OTEL_METRIC_EXPORT_INTERVAL`` (60000).

    Returns:
        A :class:`TelemetryHandle`; call ``shutdown()`` (or use ``with``) before exit.

    Raises:
        graphai.errors.TelemetryConfigError: (a ``ValueError``) an invalid argument
            (``otlp_protocol``, ``prometheus_addr``, ``metric_export_interval_ms``,
            ``service_name``), ``GRAPHAI_*`` variable (read strictly here, unlike at import) or
            standard variable (``OTEL_EXPORTER_OTLP_PROTOCOL`` and per signal,
            ``OTEL_EXPORTER_OTLP_TIMEOUT`` and per signal, ``OTEL_METRIC_EXPORT_INTERVAL``,
            ``OTEL_METRIC_EXPORT_TIMEOUT``, ``OTEL_BSP_*``, ``OTEL_BLRP_*``,
            ``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``: see
            ``graphai.telemetry.env.check_otel_env``). The message starts with the argument or
            variable and its value, e.g. ``OTEL_EXPORTER_OTLP_PROTOCOL='bogus': expected one of
            grpc, http/protobuf``. Everything is checked before anything starts: a failed call
            binds no port, builds no provider, sets no global and starts no thread.

    .. versionadded:: 0.1.0
    """
    if _otlp.env_value("OTEL_SDK_DISABLED").lower() == "true":
        return TelemetryHandle()
    # validate everything before starting anything
    env.from_env(strict=True)
    env.check_otel_env()
    target = _prometheus_target(prometheus_addr) if metrics else None
    ports = ports_from_env() if prometheus_ports is None else check_ports(prometheus_ports)
    # all checked, some used
    protocols = {s: _otlp.select_protocol(s, otlp_protocol) for s in _otlp.SIGNALS}
    protocols = {s: p for s, p in protocols.items() if _otlp.otlp_wanted(s, otlp_endpoint)}
    if service_name is not None and not (isinstance(service_name, str) and service_name):
        raise TelemetryConfigError(
            f"service_name={service_name!r}: expected a non-empty str or None"
        )
    interval = metric_export_interval_ms
    if interval is not None and (
        isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0
    ):
        raise TelemetryConfigError(
            f"metric_export_interval_ms={interval!r}: expected a number of milliseconds > 0 or None"
        )

    resource, instance_id_auto = _resource(service_name)
    existing: list[str] = []
    owned: list[Any] = []
    server: WSGIServer | None = None
    thread: threading.Thread | None = None
    rebind: Rebind | None = None  # every /metrics port in use: the handle retries

    def adopt(signal: str, enabled: bool, given: Any, current: Callable[[], Any]) -> Any:
        """The provider to use without building one, or ``None`` to build ours."""
        if not enabled or given is not None:
            return given
        if set_global and _is_real(current()):
            existing.append(signal)
            return current()
        return None

    try:
        tp = adopt("traces", traces, tracer_provider, trace.get_tracer_provider)
        if traces and tp is None:
            sdk_tp = TracerProvider(resource=resource, shutdown_on_exit=False)
            if "traces" in protocols:
                span_exp = _otlp.span_exporter(protocols["traces"], otlp_endpoint)
                sdk_tp.add_span_processor(BatchSpanProcessor(WatchedSpanExporter(span_exp)))
            owned.append(sdk_tp)
            tp = sdk_tp

        mp = adopt("metrics", metrics, meter_provider, metrics_api.get_meter_provider)
        if metrics and mp is None:
            readers: list[MetricReader] = []
            if "metrics" in protocols:
                metric_exp = _otlp.metric_exporter(protocols["metrics"], otlp_endpoint)
                exp = WatchedMetricExporter(metric_exp)
                readers.append(
                    PeriodicExportingMetricReader(
                        exp, export_interval_millis=metric_export_interval_ms
                    )
                )
            if target is not None:
                started = start_prometheus(*target, ports)
                if started is not None:
                    readers.append(started.reader)
                    server, thread, rebind = started.server, started.thread, started.rebind
            mp = MeterProvider(readers, resource=resource, shutdown_on_exit=False)
            owned.append(mp)

        lp = adopt("logs", logs, logger_provider, _logs.get_logger_provider)
        if logs and lp is None:
            sdk_lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
            if "logs" in protocols:
                log_exp = WatchedLogExporter(_otlp.log_exporter(protocols["logs"], otlp_endpoint))
                sdk_lp.add_log_record_processor(BatchLogRecordProcessor(log_exp))
            owned.append(sdk_lp)
            lp = sdk_lp
    except BaseException as exc:
        TelemetryHandle(owned=tuple(owned), server=server, server_thread=thread).shutdown(1.0)
        if isinstance(exc, ImportError) and (missing := extra_missing(exc)) is not None:
            raise missing from exc  # an exporter of the [otel] extra is not installed
        raise

    if set_global:  # only over the API's placeholders; a retired global cannot be replaced
        if tp in owned and _unset(trace.get_tracer_provider()):
            trace.set_tracer_provider(tp)
        if mp in owned and _unset(metrics_api.get_meter_provider()):
            metrics_api.set_meter_provider(mp)
        if lp in owned and _unset(_logs.get_logger_provider()):
            _logs.set_logger_provider(lp)

    handle = TelemetryHandle(
        tracer_provider=tp,
        meter_provider=mp,
        logger_provider=lp,
        owned=tuple(owned),
        server=server,
        server_thread=thread,
        rebind=rebind,
        restore_instrumented=is_instrumented(),
        instance_id_auto=instance_id_auto
        and any(p in owned for p in (tp, mp, lp) if p is not None),
    )
    if existing:  # say what the adopted providers cost: a team scraping /metrics must know
        not_started = [
            *([N.NOT_STARTED_PROMETHEUS] if "metrics" in existing and target is not None else []),
            *([N.NOT_STARTED_OTLP] if any(s in protocols for s in existing) else []),
        ]
        log_event(
            "warning",
            LOG_PROVIDERS_EXIST,
            signals=existing,
            action="used as they are",
            not_started=not_started,
            hint=(
                "set OTEL_METRICS_EXPORTER=prometheus (opentelemetry-instrument starts its own"
                " /metrics on OTEL_EXPORTER_PROMETHEUS_PORT) or pass a PrometheusMetricReader"
                " to your MeterProvider"
                if N.NOT_STARTED_PROMETHEUS in not_started
                else "exporters come from the existing providers (under opentelemetry-instrument:"
                " OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER)"
            ),
        )
    instrument(tracer_provider=tp, meter_provider=mp)
    take_instrumentation(handle)
    return handle
