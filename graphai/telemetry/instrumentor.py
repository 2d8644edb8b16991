"""
graphai as an ``opentelemetry-instrument`` instrumentation (entry point group
``opentelemetry_instrumentor``, name ``graphai``), like the contrib instrumentations.

``opentelemetry-instrument`` loads :class:`GraphaiInstrumentor` after its configurator has set
the global SDK providers and calls ``instrument()`` on it: graphai then reports to those
providers (the exporters chosen with ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``)
without the application calling :func:`graphai.telemetry.configure`. Disable it with
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=graphai``.

This module needs ``opentelemetry-instrumentation`` (which ``opentelemetry-instrument`` comes
with); nothing else in graphai imports it, so a core install without it still imports graphai.
Without the package, importing this module raises an ``ImportError`` that says so.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

try:
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
except ImportError as _exc:  # only loaded through the entry point, i.e. with the package
    raise ImportError(
        "graphai.telemetry.instrumentor needs opentelemetry-instrumentation "
        "(pip install opentelemetry-distro); graphai itself works without it"
    ) from _exc

import graphai.telemetry as _telemetry

__all__ = ["DISTRIBUTION", "GraphaiInstrumentor"]

DISTRIBUTION = "graphai-otel >= 0.1"
"""What ``instrumentation_dependencies()`` requires: this distribution (pyproject ``name``)."""


class GraphaiInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Installs graphai's instrumentation (:func:`graphai.telemetry.instrument`) with the
    providers ``opentelemetry-instrument`` passes (``None``: the global ones)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (DISTRIBUTION,)

    def _instrument(self, **kwargs: Any) -> None:
        _telemetry.instrument(
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        _telemetry.uninstrument()
