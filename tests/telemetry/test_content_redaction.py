"""Content capture off means no content (hardening case 14): a marker string in every input,
output, token and exception message of the demo graph and of graphs with every exit path
appears in no span, metric label or log line; exception messages are redacted."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import structlog

import graphai.telemetry as telemetry
from graphai import Graph, node, router
from graphai.telemetry import env
from graphai.telemetry import names as N
from graphai.telemetry.logging import configure_logging
from tests._otel import Signals
from tests.telemetry._support import run_with_consumer

MARK = "zqxcontentmark"


def _content_graph() -> Graph:
    @node(start=True, stream=True)
    async def intake(callback: Any, query: str) -> dict[str, Any]:
        for word in query.split():
            await callback.acall(word)
        return {"echo": query, "items": [query, {"k": query}]}

    @router
    async def route(echo: str) -> dict[str, Any]:
        return {"choice": "answer", "note": echo}

    @node(stream=True)
    async def answer(callback: Any, echo: str) -> dict[str, Any]:
        await callback.acall(f"{MARK}-answer")
        return {"answer": echo}

    @node(end=True)
    async def finish(answer: str) -> dict[str, Any]:
        return {"final": answer}

    @node
    async def side(echo: str) -> dict[str, Any]:
        raise ValueError(f"side failed on {echo}")

    return (
        Graph(name="content")
        .add_node(intake)
        .add_node(route)
        .add_node(answer)
        .add_node(finish)
        .add_node(side)
        .add_edge(intake, route)
        .add_router(sources=[route], router=route, destinations=[answer, finish])
        .add_edge(answer, finish)
        .add_branch(intake, side)
        .compile()
    )


def _failing_graphs() -> list[tuple[Graph, type[BaseException]]]:
    @node(start=True, end=True)
    async def not_a_dict(query: str) -> Any:
        return f"plain {query}"

    @router(start=True)
    async def lost(query: str) -> dict[str, Any]:
        return {"choice": f"{query} is no node"}

    @node(end=True)
    async def unreachable() -> dict[str, Any]:
        return {}

    @node(start=True, end=True)
    async def raises(query: str) -> dict[str, Any]:
        raise RuntimeError(f"boom {query}")

    return [
        (Graph(name="nodict").add_node(not_a_dict).compile(), Exception),
        (
            Graph(name="lost")
            .add_node(lost)
            .add_node(unreachable)
            .add_router(sources=[lost], router=lost, destinations=[unreachable])
            .compile(),
            Exception,
        ),
        (Graph(name="raises").add_node(raises).compile(), RuntimeError),
    ]


def _span_texts(span: Any) -> list[str]:
    out = [span.name, str(span.status.description)]
    out += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for ev in span.events:
        out.append(ev.name)
        out += [f"{k}={v}" for k, v in (ev.attributes or {}).items()]
    for link in span.links:
        out += [f"{k}={v}" for k, v in (link.attributes or {}).items()]
    return out


class TestNoContentWithCaptureOff:
    """With capture off the marker is in no span (name, attribute, event, status, link), metric
    label, structlog line or stdlib log line; the caller still gets the full exception message."""

    async def test_marker_nowhere(self, caplog: pytest.LogCaptureFixture) -> None:
        from graphai._demo import Sim, build_graph

        sig = Signals(env.Settings(capture_content=False, token_events="all"))
        buf = io.StringIO()
        configure_logging(json=True, file=buf, level="debug")
        query = f"refund {MARK} order 4242 {MARK}"
        try:
            with caplog.at_level(logging.DEBUG, logger="graphai"):
                # the demo graph, marker in every input, so in its outputs and tokens too
                demo = build_graph(Sim(speed=1000.0))
                inp = {"query": query, "order": MARK, "user": MARK, "seed": 7}
                _res, toks = await run_with_consumer(demo, inp)
                assert any(MARK in str(t) for t in toks)  # the marker did flow through
                res, toks = await run_with_consumer(_content_graph(), {"query": query})
                assert res["final"] == query and f"{MARK}-answer" in toks
                for g, exc_type in _failing_graphs():
                    with pytest.raises(exc_type) as info:
                        await run_with_consumer(g, {"query": query})
                    assert MARK in str(info.value)  # the caller still gets the full message
        finally:
            structlog.reset_defaults()
            telemetry.instrument()
        try:
            spans = sig.spans()
            assert len(spans) > 10
            texts = [t for s in spans for t in _span_texts(s)]
            # exception events were recorded, with the message redacted
            assert any(t == f"exception.message={N.REDACTED}" for t in texts)
            leaks = [t for t in texts if MARK in t]
            assert leaks == []
            data = sig.reader.get_metrics_data()
            assert data is not None
            labels = json.dumps(
                [
                    dict(p.attributes)
                    for rm in data.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                    for p in m.data.data_points
                ]
            )
            assert "content" in labels and MARK not in labels
            logs = buf.getvalue()
            assert "node.error" in logs and MARK not in logs
            std = [r.getMessage() for r in caplog.records if r.name == "graphai"]
            assert not [m for m in std if MARK in m]
        finally:
            sig.close()
