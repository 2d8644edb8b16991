"""
The HTTP side of the ``/metrics`` endpoint, bounded against idle, slow and hostile clients
(docs/operations.md, "Limits of the /metrics endpoint"): a selector accept loop reads each
request head without holding a thread, then one of a fixed pool of workers serves it. The two
timeouts are module globals read at each use (tests shorten them).
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Final

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
