"""
Session fixture ``otlp_sink``: a real OTLP receiver (``otlp_sink.py``) in a subprocess.

It listens on free loopback ports, is polled until ``/healthz`` answers (bounded) and is
terminated at the end of the session. Registered as a plugin in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._tools import free_port, poll

SINK = Path(__file__).with_name("otlp_sink.py")
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class OtlpSink:
    """A running sink: where to send OTLP, and how to read back what arrived."""

    grpc_port: int
    http_port: int
    process: subprocess.Popen[bytes]

    @property
    def grpc_endpoint(self) -> str:
        """Base endpoint for ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Base endpoint for ``http/protobuf`` (exporters append ``/v1/{signal}``)."""
        return f"http://127.0.0.1:{self.http_port}"

    def endpoint(self, protocol: str) -> str:
        return self.grpc_endpoint if protocol == "grpc" else self.http_endpoint

    def get(self, kind: str) -> list[dict[str, Any]]:
        """Every export request received for ``kind`` (traces/metrics/logs), as OTLP/JSON."""
        url = f"{self.http_endpoint}/debug/{kind}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return list(json.loads(resp.read()))

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.http_endpoint}/debug/reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as resp:
        return resp.status == 200


@pytest.fixture(scope="session")
def otlp_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OtlpSink]:
    """Start ``otlp_sink.py`` on free loopback ports for the whole session."""
    grpc_port, http_port = free_port(), free_port()
    while http_port == grpc_port:
        http_port = free_port()
    log = tmp_path_factory.mktemp("otlp_sink") / "sink.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(SINK), str(grpc_port), str(http_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    sink = OtlpSink(grpc_port, http_port, proc)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                err = log.read_text(errors="replace")
                pytest.fail(f"otlp_sink.py exited with rc {proc.returncode}: {err}")
            return _healthy(f"{sink.http_endpoint}/healthz")

        poll(ready, timeout=READY_TIMEOUT_S, interval=0.05, what="otlp_sink.py /healthz")
        yield sink
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
