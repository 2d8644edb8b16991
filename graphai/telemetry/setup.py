"""
SDK, OTLP and Prometheus wiring for graphai's telemetry (extra ``[otel]``).

The only module of graphai that imports the OpenTelemetry SDK; ``graphai.telemetry.configure``
imports it on first call. It builds providers from the standard ``OTEL_*`` variables, optionally
makes them global, hands them to graphai's instrumentation and returns a
:class:`TelemetryHandle` that flushes and shuts everything down within a time budget.

Typical use::

    handle = graphai.telemetry.configure(service_name="my-app")
    graphai.telemetry.logging.configure_logging(json=True, extra_processors=[handle.log_processor])
    ...
    handle.shutdown()

(or put ``handle.log_processor`` in your own ``structlog.configure(processors=[...])`` chain,
before ``format_exc_info`` and the renderer).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import _logs, trace
from opentelemetry import metrics as metrics_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from graphai._log import log_event
from graphai.errors import TelemetryConfigError
from graphai.telemetry import env
from graphai.telemetry import names as N
from graphai.telemetry._watch import WatchedLogExporter, WatchedMetricExporter, WatchedSpanExporter
from graphai.telemetry.runtime import instrument, is_instrumented, uninstrument

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter
    from structlog.typing import EventDict, WrappedLogger

__all__ = ["OTelLogsProcessor", "TelemetryHandle", "configure"]

LOG_PROVIDERS_EXIST: Final = N.LOG_PROVIDERS_EXIST
LOG_PROMETHEUS_FAILED: Final = N.LOG_PROMETHEUS_FAILED

PROTOCOLS: Final = ("grpc", "http/protobuf")
_SIGNALS: Final = {"traces": "v1/traces", "metrics": "v1/metrics", "logs": "v1/logs"}
_NOOP_PROVIDERS: Final = frozenset(
    {"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider",
     "ProxyMeterProvider", "ProxyLoggerProvider", "NoOpLoggerProvider"}
)  # fmt: skip
# Global providers set by a handle that has since been shut down. OTel lets a global be set
# only once per process, so a later configure() cannot replace them; it builds its own.
_retired: weakref.WeakSet[Any] = weakref.WeakSet()
_owner: list[TelemetryHandle | None] = [None]


# -- structlog -> OTel logs -------------------------------------------------------------------------
_SEVERITY: Final = {
    "trace": SeverityNumber.TRACE, "debug": SeverityNumber.DEBUG, "info": SeverityNumber.INFO,
    "msg": SeverityNumber.INFO, "warning": SeverityNumber.WARN, "warn": SeverityNumber.WARN,
    "error": SeverityNumber.ERROR, "exception": SeverityNumber.ERROR,
    "critical": SeverityNumber.FATAL, "fatal": SeverityNumber.FATAL,
}  # fmt: skip
_TEXT: Final = {"msg": "INFO", "warn": "WARNING", "exception": "ERROR", "fatal": "CRITICAL"}
# carried by the record itself (body, severity, timestamp, trace context, scope, exception)
_RESERVED: Final = frozenset(
    {"event", "level", "timestamp", "exc_info", "stack_info", "exception", "logger",
     "logger_name", "trace_id", "span_id", "trace_flags"}
)  # fmt: skip
_MAX_ATTRIBUTES: Final = 128  # the SDK's default LogRecordLimits: more would be dropped + warned
_INT64: Final = 2**63


class OTelLogsProcessor:
    """
    A structlog processor that forwards each event to OpenTelemetry logs.

    Each event dict becomes one ``LogRecord``: body = the event name, severity from the level,
    trace and span ids from the current OpenTelemetry context, attributes = the event's
    primitive values (``str``, ``bool``, ``int``, ``float``; others are left out), and
    ``exc_info`` as the ``exception.*`` attributes. The event dict is returned unchanged, so
    put the processor anywhere before the renderer. It never raises: a record that cannot be
    built is counted in :attr:`dropped`.

    Args:
        logger_provider: where records go; ``None`` makes the processor a pass-through.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_closed", "_loggers", "_provider", "dropped")

    def __init__(self, logger_provider: _logs.LoggerProvider | None) -> None:
        self._provider = logger_provider
        self._loggers: dict[str, _logs.Logger] = {}
        self._closed = logger_provider is None
        self.dropped = 0

    def close(self) -> None:
        """Stop forwarding (the handle calls this at shutdown); events still pass through."""
        self._closed = True

    def _logger(self, name: str) -> _logs.Logger:
        lg = self._loggers.get(name)
        if lg is None:
            assert self._provider is not None
            lg = self._provider.get_logger(name)
            if len(self._loggers) < 64:
                self._loggers[name] = lg
        return lg

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if self._closed:
            return event_dict
        try:
            level = event_dict.get("level")
            level = level.lower() if isinstance(level, str) else method_name
            attrs: dict[str, str | bool | int | float] = {}
            for key, value in event_dict.items():
                if len(attrs) >= _MAX_ATTRIBUTES:
                    break
                if key in _RESERVED or not isinstance(value, (str, bool, int, float)):
                    continue
                if isinstance(value, int) and not -_INT64 <= value < _INT64:
                    continue  # OTLP attributes are int64
                attrs[key] = value
            exc = _exception(event_dict.get("exc_info"))
            text = event_dict.get("exception")
            if exc is None and isinstance(text, str) and len(attrs) < _MAX_ATTRIBUTES:
                attrs["exception.stacktrace"] = text  # format_exc_info ran before us
            event = event_dict.get("event")
            name = event_dict.get("logger") or event_dict.get("logger_name")
            self._logger(name if isinstance(name, str) else "structlog").emit(
                timestamp=time.time_ns(),
                severity_number=_SEVERITY.get(level, SeverityNumber.UNSPECIFIED),
                severity_text=_TEXT.get(level, level.upper()),
                body=event if isinstance(event, (str, bool, int, float)) else str(event),
                attributes=attrs,
                exception=exc,
            )
        except Exception:
            self.dropped += 1
        return event_dict


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


# -- the handle -------------------------------------------------------------------------------------
def _bounded(calls: list[Callable[[], object]], timeout_s: float) -> bool:
    """Run ``calls`` concurrently in daemon threads; True if all returned truthy (or ``None``)
    within ``timeout_s``. A call that hangs (an OTLP endpoint that stalls) is left behind."""
    results: list[bool] = []

    def run(call: Callable[[], object]) -> None:
        try:
            out = call()
            results.append(out is None or bool(out))
        except Exception:
            results.append(False)

    threads = []
    for call in calls:
        t = threading.Thread(target=run, args=(call,), name="graphai-telemetry", daemon=True)
        try:
            t.start()
        except RuntimeError:  # interpreter shutting down: no new threads
            run(call)
            continue
        threads.append(t)
    deadline = time.monotonic() + max(timeout_s, 0.0)
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.0))
    return len(results) == len(calls) and all(results)


class TelemetryHandle:
    """
    What :func:`configure` set up; flushes and shuts it down. Made by :func:`configure`.

    Attributes:
        tracer_provider: the tracer provider graphai reports to (``None``: the global one).
        meter_provider: the meter provider graphai reports to (``None``: the global one).
        logger_provider: the logger provider :attr:`log_processor` writes to, or ``None``.
        prometheus_addr: ``host:port`` the ``/metrics`` endpoint is bound to, or ``None``.
        log_processor: structlog processor forwarding events to :attr:`logger_provider`.

    Use it as a context manager, or call :meth:`shutdown` (also run at interpreter exit).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics_api.MeterProvider | None = None,
        logger_provider: _logs.LoggerProvider | None = None,
        owned: tuple[Any, ...] = (),
        server: WSGIServer | None = None,
        server_thread: threading.Thread | None = None,
        restore_instrumented: bool | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self.log_processor = OTelLogsProcessor(logger_provider)
        self.prometheus_addr: str | None = None
        if server is not None:
            host, port = str(server.server_address[0]), int(server.server_address[1])
            self.prometheus_addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._owned = owned
        self._server = server
        self._server_thread = server_thread
        self._restore = restore_instrumented
        self._lock = threading.Lock()
        self._closed = False
        atexit.register(self.shutdown)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has run."""
        return self._closed

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """
        Export what the providers hold now.

        Args:
            timeout_s: overall time budget in seconds.

        Returns:
            True if every provider flushed within the budget (and after :meth:`shutdown`).
        """
        if self._closed:
            return True
        ms = int(timeout_s * 1000)
        calls: list[Callable[[], object]] = []
        for p in (self.tracer_provider, self.meter_provider, self.logger_provider):
            flush = getattr(p, "force_flush", None)
            if callable(flush):
                calls.append(partial(flush, ms))
        return _bounded(calls, timeout_s)

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """
        Flush and shut down the providers ``configure()`` built, stop the ``/metrics``
        endpoint and point graphai back at the global providers. Idempotent.

        Providers that were passed in or already set by the application are left running.

        Args:
            timeout_s: overall time budget in seconds; an exporter that is down or stalls is
                abandoned (its daemon thread) rather than waited for.

        Returns:
            True if everything shut down within the budget.
        """
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self.shutdown)
        self.log_processor.close()
        if _owner[0] is self:
            _owner[0] = None
            try:
                if self._restore:
                    instrument()
                else:
                    uninstrument()
            except Exception:  # an invalid GRAPHAI_* variable set since configure()
                uninstrument()
        ms = int(timeout_s * 1000)
        calls: list[Callable[[], object]] = []
        for p in self._owned:
            calls.append(partial(p.shutdown, ms) if isinstance(p, MeterProvider) else p.shutdown)
            globals_ = (
                trace.get_tracer_provider(),
                metrics_api.get_meter_provider(),
                _logs.get_logger_provider(),
            )
            if any(p is g for g in globals_):
                _retired.add(p)
        if self._server is not None:
            calls.append(self._stop_server)
        return _bounded(calls, timeout_s)

    def _stop_server(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(1.0)

    def __enter__(self) -> TelemetryHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<TelemetryHandle {state} prometheus_addr={self.prometheus_addr!r}>"


# -- configuration --------------------------------------------------------------------------------
def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _protocol(signal: str, protocol: str | None) -> str:
    source = "otlp_protocol"
    if protocol is None:
        for var in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            if _env(var):
                protocol, source = _env(var), var
                break
    if protocol is not None and not isinstance(protocol, str):
        raise TelemetryConfigError(f"{source}={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    return env.parse_protocol(source, protocol or "grpc")


def _otlp_wanted(signal: str, endpoint: str | None) -> bool:
    """An OTLP endpoint is configured for ``signal`` and ``OTEL_{SIGNAL}_EXPORTER`` allows otlp."""
    selection = _env(f"OTEL_{signal.upper()}_EXPORTER")
    if selection and "otlp" not in [s.strip().lower() for s in selection.split(",")]:
        return False
    return bool(
        endpoint
        or _env("OTEL_EXPORTER_OTLP_ENDPOINT")
        or _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    )


def _endpoint(signal: str, protocol: str, endpoint: str | None) -> dict[str, Any]:
    """Exporter kwargs: the explicit endpoint as a base URL (as ``OTEL_EXPORTER_OTLP_ENDPOINT``),
    or nothing, so the exporter reads its own ``OTEL_*`` variables."""
    if not endpoint:
        return {}
    if protocol == "grpc":
        return {"endpoint": endpoint}
    return {"endpoint": f"{endpoint.rstrip('/')}/{_SIGNALS[signal]}"}


def _span_exporter(protocol: str, endpoint: str | None) -> SpanExporter:
    kw = _endpoint("traces", protocol, endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(**kw)


def _metric_exporter(protocol: str, endpoint: str | None) -> MetricExporter:
    kw = _endpoint("metrics", protocol, endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(**kw)


def _log_exporter(protocol: str, endpoint: str | None) -> LogRecordExporter:
    kw = _endpoint("logs", protocol, endpoint)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        return OTLPLogExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpLogExporter,
    )

    return HttpLogExporter(**kw)


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


# -- the /metrics endpoint -------------------------------------------------------------------------
# Bounded against idle, slow and hostile clients (docs/operations.md, "Limits of the /metrics
# endpoint"). A connection waits in the accept loop, holding no thread, until its whole request head
# has arrived; only then does one of a fixed pool of workers serve it. The two timeouts are module
# globals read at each use (tests shorten them).
if TYPE_CHECKING:
    import selectors
    import socket

_METRICS_HEAD_TIMEOUT_S: float = 5.0  # accept -> end of the headers (slow-loris bound); then closed
_METRICS_IO_TIMEOUT_S: float = 5.0  # each send/recv while a worker serves the request
_METRICS_WORKERS: Final = 8  # threads graphai-metrics-worker-1..8, plus graphai-metrics (accept)
_METRICS_MAX_PENDING: Final = 256  # connections still sending their head; beyond it the oldest goes
_METRICS_MAX_LINE: Final = 8 * 1024  # request line; longer: 414
_METRICS_MAX_HEAD: Final = 32 * 1024  # request line + headers; more: 431
_METRICS_QUEUE: Final = 64  # complete requests waiting for a worker; more: 503
_METRICS_BACKLOG: Final = 128  # listen() backlog
_METRICS_LINGER_S: Final = 1.0  # after a reject, read and drop what the client still sends
_METRICS_LINGER_BYTES: Final = 1 << 20
_METRICS_METHODS: Final = (b"GET", b"HEAD")


def _metrics_reply(status: str, extra: str = "") -> bytes:
    """A complete ``Connection: close`` HTTP reply with a one-line text body."""
    body = f"# HTTP {status}\n".encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + body


def _head_end(buf: bytearray) -> int:
    """Index just past the blank line that ends the request head, or -1."""
    ends = [i + n for i, n in ((buf.find(b"\r\n\r\n"), 4), (buf.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


def _close_socket(sock: socket.socket, drain: bool = False) -> None:
    """Close without raising; ``drain`` first half-closes and discards what is already received,
    so the close does not reset a connection whose client has not yet read the reply."""
    try:
        if drain:
            sock.shutdown(1)  # SHUT_WR
            sock.setblocking(False)
            for _ in range(16):
                if not sock.recv(4096):
                    break
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _PendingConn:
    """A connection the accept loop holds: reading its request head, or lingering after a
    reject (reading and dropping what still arrives until EOF, the deadline or a byte cap)."""

    __slots__ = ("addr", "buf", "deadline", "dropped", "linger", "sock")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.buf = bytearray()
        self.deadline = deadline
        self.linger = False
        self.dropped = 0


class _MetricsDispatcher:
    """The accept loop and the worker pool behind the ``/metrics`` server.

    :meth:`serve` runs in the ``graphai-metrics`` thread: one selector over the non-blocking
    listening socket and every pending connection. A connection's head is buffered there (at
    most ``_METRICS_MAX_HEAD`` bytes, within ``_METRICS_HEAD_TIMEOUT_S``); a complete GET/HEAD
    head is queued (bounded) for ``_METRICS_WORKERS`` worker threads that call ``handle``.
    Oversized heads, other methods and a full queue are answered from the loop itself.
    :meth:`stop` ends the loop and the workers within a bounded time."""

    def __init__(
        self, listener: socket.socket, handle: Callable[[socket.socket, bytes, Any], None]
    ) -> None:
        import queue
        import socket

        self._listener = listener
        self._handle = handle
        self._ready: queue.Queue[tuple[socket.socket, bytes, Any] | None] = queue.Queue(
            _METRICS_QUEUE
        )
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._busy: set[socket.socket] = set()
        self._workers: list[threading.Thread] = []
        self._pending: dict[socket.socket, _PendingConn] = {}  # in accept order
        self._stopping = False
        self._running = False
        self._done = threading.Event()

    # -- accept loop (graphai-metrics thread)
    def serve(self) -> None:
        import selectors

        with self._lock:
            if self._stopping or self._running:
                return
            self._running = True
        sel = selectors.DefaultSelector()
        try:
            for i in range(_METRICS_WORKERS):
                t = threading.Thread(
                    target=self._work, name=f"graphai-metrics-worker-{i + 1}", daemon=True
                )
                t.start()
                self._workers.append(t)
            self._listener.setblocking(False)
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping:
                try:
                    self._step(sel)
                except Exception:  # never let one bad event end the endpoint
                    if self._listener.fileno() < 0:
                        break
                    time.sleep(0.01)
        finally:
            for p in list(self._pending.values()):
                _close_socket(p.sock)
            self._pending.clear()
            sel.close()
            self._release_workers()
            self._done.set()

    def _step(self, sel: selectors.BaseSelector) -> None:
        timeout = 1.0
        if self._pending:
            first = min(p.deadline for p in self._pending.values())
            timeout = min(max(first - time.monotonic(), 0.0), 1.0)
        for key, _ in sel.select(timeout):
            if self._stopping:
                return
            if key.fileobj is self._listener:
                self._accept(sel)
            elif key.fileobj is self._wake_r:
                try:
                    self._wake_r.recv(64)
                except OSError:
                    pass
            else:
                self._read(sel, key.data)
        now = time.monotonic()
        for p in [p for p in self._pending.values() if p.deadline <= now]:
            self._drop(sel, p)  # head timeout (or linger over): closed without a reply

    def _accept(self, sel: selectors.BaseSelector) -> None:
        import selectors

        for _ in range(64):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of file descriptors, say: free the oldest pending one
                if self._pending:
                    self._drop(sel, next(iter(self._pending.values())))
                else:
                    time.sleep(0.05)
                return
            try:
                sock.setblocking(False)
                while len(self._pending) >= _METRICS_MAX_PENDING:
                    self._drop(sel, next(iter(self._pending.values())))
                p = _PendingConn(sock, addr, time.monotonic() + _METRICS_HEAD_TIMEOUT_S)
                sel.register(sock, selectors.EVENT_READ, p)
                self._pending[sock] = p
            except Exception:
                self._pending.pop(sock, None)
                _close_socket(sock)

    def _read(self, sel: selectors.BaseSelector, p: _PendingConn) -> None:
        import queue
        import selectors

        try:
            data = p.sock.recv(65536 if p.linger else 8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sel, p)
            return
        if p.linger:
            p.dropped += len(data)
            if p.dropped > _METRICS_LINGER_BYTES:
                self._drop(sel, p)
            return
        p.buf += data
        line, end = p.buf.find(b"\n"), _head_end(p.buf)
        if line > _METRICS_MAX_LINE or (line < 0 and len(p.buf) > _METRICS_MAX_LINE):
            self._reject(sel, p, "414 URI Too Long")
        elif end > _METRICS_MAX_HEAD or (end < 0 and len(p.buf) > _METRICS_MAX_HEAD):
            self._reject(sel, p, "431 Request Header Fields Too Large")
        elif end < 0:
            return
        elif bytes(p.buf[:line]).lstrip().split(b" ", 1)[0] not in _METRICS_METHODS:
            self._reject(sel, p, "405 Method Not Allowed", "Allow: GET, HEAD\r\n")
        else:
            sel.unregister(p.sock)
            del self._pending[p.sock]
            try:
                self._ready.put_nowait((p.sock, bytes(p.buf), p.addr))
            except queue.Full:  # every worker busy and the queue full
                sel.register(p.sock, selectors.EVENT_READ, p)
                self._pending[p.sock] = p
                self._reject(sel, p, "503 Service Unavailable", "Retry-After: 1\r\n")

    def _reject(
        self, sel: selectors.BaseSelector, p: _PendingConn, status: str, extra: str = ""
    ) -> None:
        try:
            p.sock.send(_metrics_reply(status, extra))  # small: fits the send buffer
            p.sock.shutdown(1)  # SHUT_WR
        except OSError:
            self._drop(sel, p)
            return
        p.linger, p.buf = True, bytearray()
        p.deadline = time.monotonic() + _METRICS_LINGER_S

    def _drop(self, sel: selectors.BaseSelector, p: _PendingConn) -> None:
        self._pending.pop(p.sock, None)
        try:
            sel.unregister(p.sock)
        except (KeyError, ValueError, OSError):
            pass
        _close_socket(p.sock)

    # -- workers (graphai-metrics-worker-N threads)
    def _work(self) -> None:
        while True:
            item = self._ready.get()
            if item is None:
                return
            sock, head, addr = item
            with self._lock:
                stopping = self._stopping
                if not stopping:
                    self._busy.add(sock)
            if stopping:
                _close_socket(sock)
                continue
            try:
                sock.setblocking(True)
                sock.settimeout(_METRICS_IO_TIMEOUT_S)
                self._handle(sock, head, addr)
            except Exception:  # a client gone or too slow: that request only
                pass
            finally:
                with self._lock:
                    self._busy.discard(sock)
                _close_socket(sock, drain=True)

    def _release_workers(self) -> None:
        import queue

        while True:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                _close_socket(item[0])
        for _ in self._workers:
            try:
                self._ready.put_nowait(None)
            except queue.Full:  # cannot happen: only this thread puts
                break

    # -- control (any thread)
    def stop(self, timeout_s: float = 2.0) -> None:
        """End the accept loop, close pending connections, interrupt requests in progress and
        join the workers; returns within about ``timeout_s``. Idempotent."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._stopping = True
            running = self._running
            busy = list(self._busy)
        for sock in busy:  # a worker blocked on a slow client returns at once
            try:
                sock.shutdown(2)  # SHUT_RDWR
            except OSError:
                pass
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if running:
            self._done.wait(max(deadline - time.monotonic(), 0.0))
        for t in self._workers:
            if t is not threading.current_thread():
                t.join(max(deadline - time.monotonic(), 0.0))

    def close(self) -> None:
        for s in (self._wake_r, self._wake_w):
            _close_socket(s)


def _start_prometheus(
    host: str, port: int
) -> tuple[MetricReader, WSGIServer, threading.Thread] | None:
    """A ``PrometheusMetricReader`` on its own registry, served on ``host:port`` (``/metrics``,
    plus ``/streams``: the in-flight node runs as JSON); ``None`` (with a warning) if the
    server cannot start: telemetry must not stop the application.

    The server is a :class:`_MetricsDispatcher`: a stuck or slow client holds no worker, at
    most ``_METRICS_WORKERS`` threads serve requests, GET and HEAD only, and an exception while
    collecting gives a 500 for that scrape only."""
    import io
    import json
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, make_wsgi_app

    from graphai.telemetry.runtime import active_streams

    registry = CollectorRegistry()
    metrics_app = make_wsgi_app(registry)

    def respond(environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        if environ.get("PATH_INFO") == "/streams":
            body = json.dumps({"streams": active_streams()}, default=str).encode()
            return "200 OK", [("Content-Type", "application/json")], body
        got: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            got[:] = [status, list(headers)]
            return lambda data: None

        # prometheus_client serves GET only; HEAD is answered below without the body
        body = b"".join(metrics_app({**environ, "REQUEST_METHOD": "GET"}, capture))
        return str(got[0]), list(got[1]), body

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            status, headers, body = respond(environ)
        except Exception as exc:  # a failing collector: 500 for this scrape, the server stays
            status = "500 Internal Server Error"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            body = f"# HTTP {status}: collecting failed: {type(exc).__name__}\n".encode(
                "utf-8", "backslashreplace"
            )
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    class Handler(WSGIRequestHandler):
        """Serves one request whose head the accept loop has read (``request`` is
        ``(socket, head)``); the connection is closed after the reply."""

        def setup(self) -> None:
            sock, head = self.request
            self.connection = sock
            self.rfile = io.BytesIO(head)
            self.wfile = sock.makefile("wb")

        def get_stderr(self) -> Any:
            return io.StringIO()  # a client gone mid-reply is not worth a traceback

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(WSGIServer):
        request_queue_size = _METRICS_BACKLOG
        dispatcher: _MetricsDispatcher | None = None  # None until bound

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            try:
                self.dispatcher = _MetricsDispatcher(self.socket, self._serve_one)
            except BaseException:
                self.server_close()
                raise

        def _serve_one(self, sock: socket.socket, head: bytes, addr: Any) -> None:
            request: Any = (sock, head)  # what Handler.setup() unpacks
            self.finish_request(request, addr)

        def serve_forever(self, poll_interval: float = 0.5) -> None:
            if self.dispatcher is not None:
                self.dispatcher.serve()

        def shutdown(self) -> None:
            if self.dispatcher is not None:
                self.dispatcher.stop()

        def server_close(self) -> None:  # also what TCPServer calls when bind() fails
            if self.dispatcher is not None:
                self.dispatcher.stop()
            super().server_close()
            if self.dispatcher is not None:
                self.dispatcher.close()

    try:
        Server.address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        server = make_server(host, port, app, Server, handler_class=Handler)
    except OSError as exc:
        log_event("warning", LOG_PROMETHEUS_FAILED, addr=f"{host}:{port}", error=str(exc))
        return None
    thread = threading.Thread(target=server.serve_forever, name="graphai-metrics", daemon=True)
    thread.start()
    return PrometheusMetricReader(registry=registry), server, thread


def _unset(provider: object) -> bool:
    return type(provider).__name__ in _NOOP_PROVIDERS


def _is_real(provider: object) -> bool:
    return not _unset(provider) and provider not in _retired


def configure(
    *,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    prometheus_addr: str | Literal[False] | None = None,
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
            ``False`` or ``""`` starts none. A port in use logs ``telemetry.prometheus_failed``
            and continues without the endpoint.
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
    if _env("OTEL_SDK_DISABLED").lower() == "true":
        return TelemetryHandle()
    # validate everything before starting anything
    env.from_env(strict=True)
    env.check_otel_env()
    target = _prometheus_target(prometheus_addr) if metrics else None
    protocols = {s: _protocol(s, otlp_protocol) for s in _SIGNALS}  # all checked, some used
    protocols = {s: p for s, p in protocols.items() if _otlp_wanted(s, otlp_endpoint)}
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

    resource = Resource.create({SERVICE_NAME: service_name} if service_name else {})
    existing: list[str] = []
    owned: list[Any] = []
    server: WSGIServer | None = None
    thread: threading.Thread | None = None

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
                exporter = WatchedSpanExporter(_span_exporter(protocols["traces"], otlp_endpoint))
                sdk_tp.add_span_processor(BatchSpanProcessor(exporter))
            owned.append(sdk_tp)
            tp = sdk_tp

        mp = adopt("metrics", metrics, meter_provider, metrics_api.get_meter_provider)
        if metrics and mp is None:
            readers: list[MetricReader] = []
            if "metrics" in protocols:
                exp = WatchedMetricExporter(_metric_exporter(protocols["metrics"], otlp_endpoint))
                readers.append(
                    PeriodicExportingMetricReader(
                        exp, export_interval_millis=metric_export_interval_ms
                    )
                )
            if target is not None:
                started = _start_prometheus(*target)
                if started is not None:
                    reader, server, thread = started
                    readers.append(reader)
            mp = MeterProvider(readers, resource=resource, shutdown_on_exit=False)
            owned.append(mp)

        lp = adopt("logs", logs, logger_provider, _logs.get_logger_provider)
        if logs and lp is None:
            sdk_lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
            if "logs" in protocols:
                log_exp = WatchedLogExporter(_log_exporter(protocols["logs"], otlp_endpoint))
                sdk_lp.add_log_record_processor(BatchLogRecordProcessor(log_exp))
            owned.append(sdk_lp)
            lp = sdk_lp
    except BaseException:
        TelemetryHandle(owned=tuple(owned), server=server, server_thread=thread).shutdown(1.0)
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
        restore_instrumented=is_instrumented(),
    )
    if existing:
        log_event("warning", LOG_PROVIDERS_EXIST, signals=existing, action="used as they are")
    instrument(tracer_provider=tp, meter_provider=mp)
    _owner[0] = handle
    return handle
