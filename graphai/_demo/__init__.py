"""
The ``graphai`` demo: a simulated support agent, streamed live, and the telemetry it produced.

The graph (``support-agent``)::

    receive ─▶ plan (router, streams its reasoning)
                ├─▶ call_tools ─┬─▶ search_docs    (tool) ─┐
                │               └─▶ lookup_account (tool) ─┴─▶ synthesize (llm, streams) ─▶ respond
                └─▶ synthesize (small talk needs no tools)
    synthesize ┄▶ audit_redact ─▶ audit_store      (detached branch: add_branch(wait=False))

Everything is simulated locally with a seeded random generator (token timing like a hosted LLM:
first token after 200-400 ms, then 30-60 tokens/s), scaled by ``--speed``. The terminal view is
built only from the string stream (``Callback.aiter()`` classified with ``parse_stream_token``);
the waterfall and the metrics summary at the end come from the OpenTelemetry spans (an SDK
``InMemorySpanExporter`` on the tracer provider ``graphai.telemetry.configure()`` built) and
from the Prometheus ``/metrics`` endpoint it serves.

The rooms: ``sim`` (the simulated agent, its graph and inputs), ``view`` (terminal output),
``telemetry`` (set-up), ``report`` (waterfall and metrics summary) and ``cli`` (the command).
"""

from __future__ import annotations

from graphai._demo.cli import DETAIL_RUNS, build_parser, main, run_all, run_one
from graphai._demo.report import (
    Histo,
    Labels,
    histogram_quantile,
    render_metrics,
    render_report,
    render_waterfall,
    runs_from_spans,
    scrape,
)
from graphai._demo.sim import (
    BRANCH_NODES,
    DOCS,
    GRAPH_NAME,
    LLM_MODEL,
    QUERIES,
    SERVICE_NAME,
    RunResult,
    Sim,
    build_graph,
    build_order,
    classify,
    run_inputs,
    tokenize,
)
from graphai._demo.telemetry import Telemetry, port_in_use, setup_telemetry
from graphai._demo.view import Board, Out, StreamView, color_wanted, fmt_s

__all__ = [
    "BRANCH_NODES",
    "DETAIL_RUNS",
    "DOCS",
    "GRAPH_NAME",
    "LLM_MODEL",
    "QUERIES",
    "SERVICE_NAME",
    "Board",
    "Histo",
    "Labels",
    "Out",
    "RunResult",
    "Sim",
    "StreamView",
    "Telemetry",
    "build_graph",
    "build_order",
    "build_parser",
    "classify",
    "color_wanted",
    "fmt_s",
    "histogram_quantile",
    "main",
    "port_in_use",
    "render_metrics",
    "render_report",
    "render_waterfall",
    "run_all",
    "run_inputs",
    "run_one",
    "runs_from_spans",
    "scrape",
    "setup_telemetry",
    "tokenize",
]
