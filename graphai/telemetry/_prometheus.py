"""
The ``/metrics`` + ``/streams`` endpoint of :func:`graphai.telemetry.configure`
(:func:`start_prometheus`) and the selector accept loop and worker pool serving it. Bounded
against idle, slow and hostile clients (docs/operations.md, "Limits of the /metrics endpoint"):
a connection holds no thread until its whole request head has arrived; then one of a fixed pool
of workers serves it. The two timeouts are module globals read at each use (tests shorten them).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from graphai._log import log_event
from graphai.telemetry import env
from graphai.telemetry import names as N
from graphai.telemetry._http import _METRICS_BACKLOG, _MetricsDispatcher
from graphai.telemetry.runtime import active_streams

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

__all__ = [
    "GRAPHAI_PROMETHEUS_PORTS",
    "Endpoint",
    "ports_from_env",
    "rebind_later",
    "reopen_after_fork",
    "start_prometheus",
]

LOG_PROMETHEUS_FAILED: Final = N.LOG_PROMETHEUS_FAILED
LOG_PROMETHEUS_STARTED: Final = N.LOG_PROMETHEUS_STARTED
"""Info: the ``/metrics`` endpoint is listening (``addr``; ``fallback_from`` when the first port
of a ``GRAPHAI_PROMETHEUS_PORTS`` range was taken; ``after_fork`` in a forked child)."""
GRAPHAI_PROMETHEUS_PORTS: Final = env.GRAPHAI_PROMETHEUS_PORTS
"""How many consecutive ports, from the port of ``GRAPHAI_PROMETHEUS_ADDR``, ``configure()`` tries
for ``/metrics``; the first free one is used (one per worker of a multi-process server).
Default ``1``: only that port (docs/operations.md, "Multi-worker servers")."""
MAX_PROMETHEUS_PORTS: Final = 1024
MULTIWORKER_HINT: Final = (
    "the port is taken, often by another worker of the same server (uvicorn --workers, "
    "gunicorn): set GRAPHAI_PROMETHEUS_PORTS to the number of workers (one port each) or push "
    "metrics with OTLP; see docs/operations.md, 'Multi-worker servers'"
)

Rebind = tuple[Any, ...]
"""What serving the same registry again takes (``server.graphai_rebind``)."""

REBIND_EVERY_S = 0.5
REBIND_FOR_S = 60.0
"""When every port of the range is taken (at ``configure()`` or in a child after a fork), how
often and how long graphai tries again: gunicorn starts new workers before the old ones exit
(``kill -HUP``)."""


class Endpoint(NamedTuple):
    """What :func:`start_prometheus` started: the reader, and its server and thread, or (every
    port of the range in use) no server yet and what :func:`rebind_later` needs to retry."""

    reader: MetricReader
    server: WSGIServer | None
    thread: threading.Thread | None
    rebind: Rebind | None


def start_prometheus(host: str, port: int, ports: int = 1) -> Endpoint | None:
    """A ``PrometheusMetricReader`` on its own registry, served on ``host:port`` (``/metrics``,
    plus ``/streams``: the in-flight node runs as JSON). With ``ports`` > 1 the first free port
    of ``port .. port + ports - 1`` is taken (one per worker of a multi-process server); the
    bound address is logged (``telemetry.prometheus_started``). Telemetry must not stop the
    application: when every port is in use (gunicorn's HUP starts the new workers while the old
    ones still hold the range) the reader is returned without a server, to be served when
    :func:`rebind_later` finds a port freed (the warning says ``retrying_for_s``); any other
    failure (a host that cannot be bound) gives ``None`` with a warning.

    The server is a :class:`_MetricsDispatcher`: a stuck or slow client holds no worker, at
    most ``_METRICS_WORKERS`` threads serve requests, GET and HEAD only, and an exception while
    collecting gives a 500 for that scrape only."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, make_wsgi_app

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
            self.connection, self.rfile, self.wfile = sock, io.BytesIO(head), sock.makefile("wb")

        def get_stderr(self) -> Any:
            return io.StringIO()  # a client gone mid-reply is not worth a traceback

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(WSGIServer):
        request_queue_size = _METRICS_BACKLOG
        dispatcher: _MetricsDispatcher | None = None  # None until bound
        graphai_rebind: Any = None  # what reopen_after_fork() needs to serve it again

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

    server, in_use = _bind(host, port, ports, app, Server, Handler, retry=True)
    if server is None and not in_use:
        return None
    reader = PrometheusMetricReader(registry=registry)
    rebind = (host, port, ports, app, Server, Handler, registry, reader)
    if server is None:
        return Endpoint(reader, None, None, rebind)
    server.graphai_rebind = rebind
    return Endpoint(reader, server, _serve(server), None)


def _serve(server: WSGIServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="graphai-metrics", daemon=True)
    thread.start()
    return thread


def _bind(
    host: str,
    port: int,
    ports: int,
    app: Any,
    server_cls: Any,
    handler: Any,
    quiet: bool = False,
    retry: bool = False,
    **log: Any,
) -> tuple[Any, bool]:
    """``(server, in_use)``: the server bound to the first free port of ``port .. port + ports
    - 1`` (only ``port`` when it is 0), logged; or ``None`` with a warning (none when
    ``quiet``) if none could be bound, ``in_use`` saying whether every port was taken (the
    warning then says ``retrying_for_s`` when ``retry``)."""
    candidates = [port] if port == 0 else list(range(port, min(port + max(ports, 1), 65536)))
    last: OSError | None = None
    in_use = True
    for candidate in candidates:
        try:
            server_cls.address_family = socket.getaddrinfo(
                host, candidate, type=socket.SOCK_STREAM
            )[0][0]
            server = make_server(host, candidate, app, server_cls, handler_class=handler)
        except OSError as exc:
            last = exc
            in_use = exc.errno in (errno.EADDRINUSE, errno.EACCES)
            if not in_use:  # not a port problem (bad host, say): the next port fails the same
                break
            continue
        bound = int(server.server_address[1])
        extra = {} if candidate == port else {"fallback_from": f"{host}:{port}"}
        if ports > 1:
            extra["ports"] = f"{port}-{candidates[-1]}"
        log_event(
            "info", LOG_PROMETHEUS_STARTED, addr=_addr(host, bound), pid=os.getpid(), **extra, **log
        )
        return server, False
    in_use = in_use and port != 0
    fields: dict[str, Any] = {"addr": f"{host}:{port}", "error": str(last), **log}
    if len(candidates) > 1:
        fields["ports"] = f"{port}-{candidates[-1]}"
    if in_use:
        fields["hint"] = MULTIWORKER_HINT
        if retry:
            fields["retrying_for_s"] = REBIND_FOR_S
    if not quiet:
        log_event("warning", LOG_PROMETHEUS_FAILED, **fields)
    return None, in_use


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reopen_after_fork(
    server: WSGIServer,
) -> tuple[tuple[WSGIServer, threading.Thread] | None, Rebind | None]:
    """In a child after ``fork()``: drop the inherited endpoint (its threads did not survive)
    without disturbing the parent's, and serve the same registry on a port of the same range
    (``telemetry.prometheus_started ... after_fork=True``), or log ``telemetry.prometheus_failed``.
    Returns the new endpoint (``None`` when none runs) and, when none could be bound, what
    :func:`rebind_later` needs to try again."""
    dispatcher = getattr(server, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.abandon()
    else:
        with contextlib.suppress(OSError):
            server.socket.close()
    rebind = getattr(server, "graphai_rebind", None)
    if rebind is None:
        return None, None
    host, port, ports, app, server_cls, handler, registry, reader = rebind
    if hasattr(registry, "_lock"):  # a scrape in flight at fork time would hold it forever
        registry._lock = threading.Lock()  # noqa: SLF001
    collector = getattr(reader, "_collector", None)
    if collector is not None and hasattr(collector, "_target_info"):
        collector._target_info = None  # noqa: SLF001 (built once from the resource)
    new, in_use = _bind(host, port, ports, app, server_cls, handler, retry=True, after_fork=True)
    if new is None:
        return None, rebind if in_use else None
    new.graphai_rebind = rebind
    return (new, _serve(new)), None


def rebind_later(
    rebind: Rebind,
    on_bound: Callable[[WSGIServer, threading.Thread], None],
    stop: threading.Event,
    **log: Any,
) -> threading.Thread:
    """Try the range again every ``REBIND_EVERY_S`` for ``REBIND_FOR_S`` in a daemon thread;
    the first port freed is served and handed to ``on_bound`` (logged
    ``telemetry.prometheus_started ... retried=True`` with ``log``, e.g. ``after_fork=True``).
    Giving up logs ``telemetry.prometheus_failed ... gave_up_after_s``; ``stop`` ends the
    attempts."""
    host, port, ports, app, server_cls, handler = rebind[:6]

    def attempts() -> None:
        deadline = time.monotonic() + REBIND_FOR_S
        while not stop.wait(REBIND_EVERY_S):
            try:
                new, _ = _bind(host, port, ports, app, server_cls, handler, quiet=True,
                               retried=True, **log)  # fmt: skip
            except Exception:  # telemetry never breaks the process
                new = None
            if new is not None:
                new.graphai_rebind = rebind
                on_bound(new, _serve(new))
                return
            if time.monotonic() >= deadline:
                log_event("warning", LOG_PROMETHEUS_FAILED, addr=_addr(host, port),
                          gave_up_after_s=REBIND_FOR_S, **log)  # fmt: skip
                return

    thread = threading.Thread(target=attempts, name="graphai-metrics-rebind", daemon=True)
    thread.start()
    return thread


def ports_from_env() -> int:
    """``GRAPHAI_PROMETHEUS_PORTS`` (default 1); raises ``TelemetryConfigError`` naming it."""
    raw = os.environ.get(GRAPHAI_PROMETHEUS_PORTS, "")
    value = raw.strip()
    if not value:
        return 1
    number: Any = int(value) if value.isascii() and value.isdigit() else raw
    return check_ports(number, GRAPHAI_PROMETHEUS_PORTS)


def check_ports(value: Any, name: str = "prometheus_ports") -> int:
    from graphai.errors import TelemetryConfigError

    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 < value <= MAX_PROMETHEUS_PORTS
    ):
        raise TelemetryConfigError(
            f"{name}={value!r}: expected a number of ports from 1 to {MAX_PROMETHEUS_PORTS}"
        )
    return value
