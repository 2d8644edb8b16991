"""Telemetry behaviours: spans, metrics and gauges, logs, settings and ``configure()``, the
instrumentation's lifecycle, the guard at the seam, the label guard, content redaction,
exporter failures, the testing helper and fork safety, one module per behaviour (the module's
docstring states it; a number "case N" is the hardening case of ``docs/reliability.md``).

Fixtures shared by the modules are in ``conftest.py``, helpers in ``_support.py``.
"""
