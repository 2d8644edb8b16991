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
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from graphai._log import log_event
from graphai.telemetry import names as N
from graphai.telemetry.runtime import active_streams

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader

__all__ = ["GRAPHAI_PROMETHEUS_PORTS", "ports_from_env", "reopen_after_fork", "start_prometheus"]

LOG_PROMETHEUS_FAILED: Final = N.LOG_PROMETHEUS_FAILED
LOG_PROMETHEUS_STARTED: Final = "telemetry.prometheus_started"
"""Info: the ``/metrics`` endpoint is listening (``addr``; ``fallback_from`` when the first port
of a ``GRAPHAI_PROMETHEUS_PORTS`` range was taken; ``after_fork`` in a forked child)."""
GRAPHAI_PROMETHEUS_PORTS: Final = "GRAPHAI_PROMETHEUS_PORTS"
"""How many consecutive ports, from the port of ``GRAPHAI_PROMETHEUS_ADDR``, ``configure()`` tries
for ``/metrics``; the first free one is used (one per worker of a multi-process server).
Default ``1``: only that port (docs/operations.md, "Multi-worker servers")."""
MAX_PROMETHEUS_PORTS: Final = 1024
MULTIWORKER_HINT: Final = (
    "the port is taken, often by another worker of the same server (uvicorn --workers, "
    "gunicorn): set GRAPHAI_PROMETHEUS_PORTS to the number of workers (one port each) or push "
    "metrics with OTLP; see docs/operations.md, 'Multi-worker servers'"
)

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
    with contextlib.suppress(OSError):
        if drain:
            sock.shutdown(1)  # SHUT_WR
            sock.setblocking(False)
            for _ in range(16):
                if not sock.recv(4096):
                    break
    with contextlib.suppress(OSError):
        sock.close()


class _PendingConn:
    """A connection the accept loop holds: reading its request head, or lingering after a
    reject (reading and dropping what still arrives until EOF, the deadline or a byte cap)."""

    __slots__ = ("addr", "buf", "deadline", "dropped", "linger", "sock")

    def __init__(self, sock: socket.socket, addr: Any, deadline: float) -> None:
        self.sock, self.addr, self.deadline = sock, addr, deadline
        self.buf, self.linger, self.dropped = bytearray(), False, 0


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
        with self._lock:
            if self._stopping or self._running:
                return
            self._running = True
        sel = selectors.DefaultSelector()
        try:
            for i in range(_METRICS_WORKERS):
                name = f"graphai-metrics-worker-{i + 1}"
                t = threading.Thread(target=self._work, name=name, daemon=True)
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
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            else:
                self._read(sel, key.data)
        now = time.monotonic()
        for p in [p for p in self._pending.values() if p.deadline <= now]:
            self._drop(sel, p)  # head timeout (or linger over): closed without a reply

    def _accept(self, sel: selectors.BaseSelector) -> None:
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
        with contextlib.suppress(KeyError, ValueError, OSError):
            sel.unregister(p.sock)
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
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._ready.get_nowait()
                if item is not None:
                    _close_socket(item[0])
        with contextlib.suppress(queue.Full):  # cannot happen: only this thread puts
            for _ in self._workers:
                self._ready.put_nowait(None)

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
            with contextlib.suppress(OSError):
                sock.shutdown(2)  # SHUT_RDWR
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if running:
            self._done.wait(max(deadline - time.monotonic(), 0.0))
        for t in self._workers:
            if t is not threading.current_thread():
                t.join(max(deadline - time.monotonic(), 0.0))

    def close(self) -> None:
        for s in (self._wake_r, self._wake_w):
            _close_socket(s)

    def abandon(self) -> None:
        """In a child after ``fork()``: the loop and worker threads do not exist here, and
        every socket is shared with the parent, whose server still runs. Close this process's
        descriptors only: no ``shutdown()`` (it would cut the parent's connections), no wake-up
        byte, no lock (one may have been held by a thread that did not survive the fork)."""
        self._stopping = True
        self._workers = []
        socks = [p.sock for p in self._pending.values()] + list(self._busy)
        self._pending, self._busy = {}, set()
        with contextlib.suppress(Exception):
            while True:
                item = self._ready.get_nowait()
                if item is not None:
                    socks.append(item[0])
        for sock in (*socks, self._wake_r, self._wake_w, self._listener):
            with contextlib.suppress(OSError):
                sock.close()


def start_prometheus(
    host: str, port: int, ports: int = 1
) -> tuple[MetricReader, WSGIServer, threading.Thread] | None:
    """A ``PrometheusMetricReader`` on its own registry, served on ``host:port`` (``/metrics``,
    plus ``/streams``: the in-flight node runs as JSON); ``None`` (with a warning) if the
    server cannot start: telemetry must not stop the application. With ``ports`` > 1 the
    first free port of ``port .. port + ports - 1`` is taken (one per worker of a
    multi-process server); the bound address is logged (``telemetry.prometheus_started``).

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

    server = _bind(host, port, ports, app, Server, Handler)
    if server is None:
        return None
    reader = PrometheusMetricReader(registry=registry)
    server.graphai_rebind = (host, port, ports, app, Server, Handler, registry, reader)
    return reader, server, _serve(server)


def _serve(server: WSGIServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="graphai-metrics", daemon=True)
    thread.start()
    return thread


def _bind(
    host: str, port: int, ports: int, app: Any, server_cls: Any, handler: Any, **log: Any
) -> Any:
    """The server bound to the first free port of ``port .. port + ports - 1`` (only ``port``
    when it is 0), logged; ``None`` with a warning if none could be bound."""
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
        return server
    fields: dict[str, Any] = {"addr": f"{host}:{port}", "error": str(last), **log}
    if len(candidates) > 1:
        fields["ports"] = f"{port}-{candidates[-1]}"
    if in_use:
        fields["hint"] = MULTIWORKER_HINT
    log_event("warning", LOG_PROMETHEUS_FAILED, **fields)
    return None


def _addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def reopen_after_fork(server: WSGIServer) -> tuple[WSGIServer, threading.Thread] | None:
    """In a child after ``fork()``: drop the inherited endpoint (its threads did not survive)
    without disturbing the parent's, and serve the same registry on a port of the same range
    (``telemetry.prometheus_started ... after_fork=True``), or log ``telemetry.prometheus_failed``
    and go on without one. ``None`` when no endpoint runs in the child."""
    dispatcher = getattr(server, "dispatcher", None)
    if dispatcher is not None:
        dispatcher.abandon()
    else:
        with contextlib.suppress(OSError):
            server.socket.close()
    rebind = getattr(server, "graphai_rebind", None)
    if rebind is None:
        return None
    host, port, ports, app, server_cls, handler, registry, reader = rebind
    if hasattr(registry, "_lock"):  # a scrape in flight at fork time would hold it forever
        registry._lock = threading.Lock()  # noqa: SLF001
    collector = getattr(reader, "_collector", None)
    if collector is not None and hasattr(collector, "_target_info"):
        collector._target_info = None  # noqa: SLF001 (built once from the resource)
    new = _bind(host, port, ports, app, server_cls, handler, after_fork=True)
    if new is None:
        return None
    new.graphai_rebind = rebind
    return new, _serve(new)


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
