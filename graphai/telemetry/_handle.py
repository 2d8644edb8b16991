"""
:class:`TelemetryHandle`: what ``graphai.telemetry.configure()`` set up, flushed and shut down
within a time budget; and the process-wide bookkeeping that goes with it (which handle owns
graphai's instrumentation, which global providers a shut-down handle left behind).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from opentelemetry import _logs, trace
from opentelemetry import metrics as metrics_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, Resource

from graphai._log import log_event
from graphai.telemetry import names as N
from graphai.telemetry._prometheus import Rebind, rebind_later, reopen_after_fork
from graphai.telemetry.otel_logs import OTelLogsProcessor
from graphai.telemetry.runtime import instrument, uninstrument

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

__all__ = ["TelemetryHandle", "default_instance_id", "is_retired", "take_instrumentation"]

LOG_FORK_RESOURCE_STALE = N.LOG_FORK_RESOURCE_STALE
"""Warning: in a forked child, ``service.instance.id`` could not be renewed (an SDK without
``_update_resource``): the child reports under its parent's id."""

# Global providers set by a handle that has since been shut down. OTel lets a global be set
# only once per process, so a later configure() cannot replace them; it builds its own.
_retired: weakref.WeakSet[Any] = weakref.WeakSet()
# The handle whose providers graphai's instrumentation reports to (the last configure()).
_owner: list[TelemetryHandle | None] = [None]


def is_retired(provider: object) -> bool:
    """True if ``provider`` is a global that a shut-down handle left behind."""
    return provider in _retired


def default_instance_id() -> str:
    """``service.instance.id`` when none is configured: ``<hostname>-<pid>``, unique among the
    live processes of a host (so among the workers of one server) and readable in a query."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _addr_of(server: WSGIServer) -> str:
    host, port = str(server.server_address[0]), int(server.server_address[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def take_instrumentation(handle: TelemetryHandle) -> None:
    """Record ``handle`` as the one graphai reports to; its shutdown restores the previous state."""
    _owner[0] = handle


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
        rebind: Rebind | None = None,
        restore_instrumented: bool | None = None,
        instance_id_auto: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self.log_processor = OTelLogsProcessor(logger_provider)
        self.prometheus_addr: str | None = _addr_of(server) if server is not None else None
        self._owned = owned
        self._server = server
        self._server_thread = server_thread
        self._restore = restore_instrumented
        self._instance_id_auto = instance_id_auto
        self._lock = threading.Lock()
        self._closed = False
        # every /metrics port was taken (at configure() or after a fork): what to bind, the
        # thread trying again and its stop; _rebind is cleared when a port is bound
        self._rebind = rebind
        self._rebind_stop: threading.Event | None = None
        self._rebind_thread: threading.Thread | None = None
        atexit.register(self.shutdown)
        if rebind is not None:
            self._retry_bind()
        if (server is not None or rebind is not None or instance_id_auto) and hasattr(
            os, "register_at_fork"
        ):
            at_fork = weakref.WeakMethod(self._after_fork_in_child)

            def after_in_child() -> None:
                if (method := at_fork()) is not None:
                    method()

            os.register_at_fork(after_in_child=after_in_child)

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
        if self._rebind_stop is not None:
            self._rebind_stop.set()  # no endpoint starts after shutdown (_adopt checks too)
        if self._server is not None:
            calls.append(self._stop_server)
        return _bounded(calls, timeout_s)

    def _stop_server(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(1.0)

    def _after_fork_in_child(self) -> None:
        """``os.fork()`` copied this handle without the threads behind it (gunicorn
        ``--preload``, multiprocessing ``fork``). The SDK restarts its own exporter threads;
        here the child gets its own ``service.instance.id`` (when graphai chose it) and its own
        ``/metrics`` endpoint (a port of the same range, or none, logged either way), and the
        parent's endpoint is left untouched."""
        self._lock = threading.Lock()  # may have been held by a thread that is gone
        if self._closed:
            return
        if self._instance_id_auto:
            self._renew_instance_id()
        self._rebind_stop = self._rebind_thread = None  # a parent's retries stay the parent's
        if self._server is None and self._rebind is not None:
            self._retry_bind(after_fork=True)  # the parent was still trying: so does the child
        elif self._server is not None:
            old, self._server, self._server_thread = self._server, None, None
            self.prometheus_addr = None
            rebind = None
            try:
                reopened, rebind = reopen_after_fork(old)
            except Exception as exc:  # telemetry must not break the child
                log_event("warning", N.LOG_PROMETHEUS_FAILED, after_fork=True, error=repr(exc))
                reopened = None
            if reopened is not None:
                self._server, self._server_thread = reopened
                self.prometheus_addr = _addr_of(self._server)
            elif rebind is not None:
                self._rebind = rebind
                self._retry_bind(after_fork=True)

    def _retry_bind(self, **log: Any) -> None:
        """Every port of the range is taken (gunicorn starts new workers before the old ones
        exit, ``kill -HUP``): take the first one freed, in the background."""
        assert self._rebind is not None
        self._rebind_stop = threading.Event()
        try:
            self._rebind_thread = rebind_later(self._rebind, self._adopt, self._rebind_stop, **log)
        except RuntimeError:  # no new threads (interpreter shutting down): no endpoint
            self._rebind_thread = None

    def _adopt(self, server: WSGIServer, thread: threading.Thread) -> None:
        """A port bound by the retries: serve it, unless shut down meanwhile."""
        with self._lock:
            if not self._closed:
                self._server, self._server_thread = server, thread
                self._rebind = None
                self.prometheus_addr = _addr_of(server)
                return
        server.shutdown()
        server.server_close()

    def _renew_instance_id(self) -> None:
        fresh = Resource({SERVICE_INSTANCE_ID: default_instance_id()})
        stale = []
        for p in self._owned:
            update = getattr(p, "_update_resource", None)
            try:
                if not callable(update):
                    raise AttributeError("_update_resource")
                update(fresh)
            except Exception:
                stale.append(type(p).__name__)
        if stale:
            log_event("warning", LOG_FORK_RESOURCE_STALE, providers=stale, pid=os.getpid())

    def __enter__(self) -> TelemetryHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<TelemetryHandle {state} prometheus_addr={self.prometheus_addr!r}>"
