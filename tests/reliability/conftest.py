"""Fixtures of the reliability suite (see ``docs/reliability.md``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability._support import Telemetry


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    """Fresh in-memory providers passed to ``graphai.telemetry.instrument``; the globals are
    re-instrumented at teardown."""
    t = Telemetry()
    yield t
    t.close()
