"""
The FastAPI SSE example with ``configure()`` at app load instead of in the lifespan startup: what
an application that configures telemetry at import does. Under gunicorn ``--preload`` that runs
in the master before the fork, which is the fork-safety path the gunicorn tests exercise
(``docs/operations.md``, "Fork and --preload").
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi_sse import create_app  # examples/ is on gunicorn's --pythonpath

import graphai.telemetry


def serve_app() -> FastAPI:
    if not logging.getLogger().handlers:  # show telemetry.prometheus_started (the bound port)
        logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
    handle = graphai.telemetry.configure(service_name="graphai-sse-example")
    return create_app(telemetry=handle)
