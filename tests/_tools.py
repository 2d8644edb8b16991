"""Helpers shared by tests: locating external tools, bounded polling, free ports."""

from __future__ import annotations

import os
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
