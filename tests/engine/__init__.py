"""The engine's behaviours: building a graph, running it, and the callback stream its consumer
reads, one module per behaviour (the module's docstring states it; a number "case N" is the
hardening case of ``docs/reliability.md``). Shared helpers: ``tests/engine/_support.py``.

Compatibility with graphai-lib 0.0.12 lives in ``tests/compat/`` (behaviours kept) and
``tests/fixes/`` (upstream bugs fixed on purpose).
"""
