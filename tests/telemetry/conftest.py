"""Fixtures shared by the ``tests/telemetry`` modules (none of them autouse: a module or a
class asks for ``clean_env`` with ``pytest.mark.usefixtures``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from graphai import _hooks
from graphai.telemetry.setup import TelemetryHandle


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* / GRAPHAI_* from the caller's shell; graphai's instrumentation restored after."""
    for k in list(os.environ):
        if k.startswith(("OTEL_", "GRAPHAI_")):
            monkeypatch.delenv(k)
    before = _hooks.get_instrumentation()
    yield
    _hooks.set_instrumentation(before)


@pytest.fixture
def handles() -> Iterator[list[TelemetryHandle]]:
    """Collects handles and shuts them all down (bounded) even when a test fails."""
    made: list[TelemetryHandle] = []
    yield made
    for h in made:
        h.shutdown(timeout_s=2)
