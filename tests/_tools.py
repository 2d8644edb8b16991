"""Helpers shared by tests: locating external tools, bounded polling, free ports."""

from __future__ import annotations

import os
import random
import shutil
import socket
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str, hint: str) -> str:
    """Path of an executable; skip (fail under CI=true) with a message when it is missing."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} not found ({hint})"
        if IN_CI:
            pytest.fail(f"{msg}; CI=true requires it")
        pytest.skip(msg)
    return path


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux: 32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORT_LOW = 20000
_PORT_HIGH = max(_PORT_LOW + 2000, _ephemeral_low())
_handed_out: set[int] = set()
_rng = random.Random(os.getpid() ^ time.monotonic_ns())


def bindable(port: int) -> bool:
    """True if a loopback socket can bind ``port`` now."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_range(n: int = 1) -> int:
    """A base port whose ``n`` consecutive loopback ports are free now.

    The ports come from below the kernel's ephemeral range, so the outgoing connections of this
    or any other process (which the kernel numbers from that range) cannot take one between this
    call and the moment a server binds it; nor does this process hand the same port out twice.
    (A plain ``bind(0)`` port is an ephemeral one: a CI run lost a Collector start to a client
    socket that had taken it.)"""
    for _ in range(500):
        base = _rng.randrange(_PORT_LOW, _PORT_HIGH - n)
        ports = range(base, base + n)
        if any(p in _handed_out for p in ports) or not all(bindable(p) for p in ports):
            continue
        _handed_out.update(ports)
        return base
    raise RuntimeError(f"no {n} consecutive free ports in [{_PORT_LOW}, {_PORT_HIGH})")


def free_port() -> int:
    """A loopback port that is free now (see :func:`free_port_range`)."""
    return free_port_range(1)


def poll(fn: Callable[[], T | None], timeout: float, interval: float = 0.1, what: str = "") -> T:
    """Call ``fn`` until it returns a truthy value or ``timeout`` seconds pass (then fail,
    showing the last exception or value)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or fn!r}; last: {last!r}")
