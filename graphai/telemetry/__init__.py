"""
graphai's OpenTelemetry instrumentation.

The engine reports to this package through one seam (``graphai._hooks``); this package turns
those reports into spans, span events, metrics and structlog lines (names: ``names.py``; env:
``env.py``). It uses the OpenTelemetry *API* only: without an SDK every call is a no-op.

- ``instrument(tracer_provider=None, meter_provider=None)``: (re)install the instrumentation,
  optionally with explicit providers (tests, multi-tenant apps); idempotent. Unless the
  application calls it (or ``uninstrument()``), the engine's first run installs it with the
  global providers; ``import graphai`` does no telemetry work. ``GRAPHAI_TELEMETRY=off``: none.
- ``uninstrument()``: back to no telemetry at all.
- ``configure(...)`` (extra ``[otel]``): SDK providers, OTLP export, Prometheus ``/metrics``;
  returns a handle with ``force_flush()`` and ``shutdown()``.

The public submodules (``env``, ``logging``, ``names``, ``setup``, ``streams``, ``testing``...)
are attributes too, imported on first access.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from graphai.telemetry.runtime import (
    active_streams,
    instrument,
    is_instrumented,
    uninstrument,
)

if TYPE_CHECKING:
    from graphai.telemetry.setup import TelemetryHandle

__all__ = [
    "TelemetryHandle",
    "active_streams",
    "configure",
    "instrument",
    "is_instrumented",
    "uninstrument",
]


def configure(**kwargs: Any) -> TelemetryHandle:
    """Set up the OpenTelemetry SDK, OTLP export and the Prometheus endpoint (extra ``[otel]``).
    See :func:`graphai.telemetry.setup.configure` for the arguments."""
    from graphai.telemetry.setup import configure as _configure

    return _configure(**kwargs)


# Public submodules (no leading ``_``), imported on first attribute access:
# ``graphai.telemetry.logging`` works after a bare ``import graphai.telemetry``, and the import
# itself stays cheap and needs no SDK (``testing`` needs the extra ``[otel]``, ``instrumentor``
# needs ``opentelemetry-instrumentation``, only when they are used).
@functools.cache
def _submodules() -> frozenset[str]:
    return frozenset(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def __getattr__(name: str) -> Any:
    if name == "TelemetryHandle":
        from graphai.telemetry.setup import TelemetryHandle

        return TelemetryHandle
    if name in _submodules():
        # import_module also binds the submodule as an attribute of this package, so this
        # hook runs once per submodule.
        return importlib.import_module(f"{__name__}.{name}")
    available = ", ".join(sorted({*__all__, *_submodules()}))
    raise AttributeError(
        f"module 'graphai.telemetry' has no attribute {name!r} (available: {available})"
    )


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_submodules()})
