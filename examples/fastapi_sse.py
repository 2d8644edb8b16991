"""
Streaming a graph to a browser with server-sent events (FastAPI).

Two endpoints:

- ``POST /stream`` streams the string callback (``Callback``): every token, special tokens
  included, as one SSE event. A token with line breaks becomes several ``data:`` lines of the
  same event (the SSE rule: the client joins them with ``\\n``), so nothing is lost or split.
- ``POST /events`` streams an ``EventCallback``: each ``GraphEvent`` framed by
  ``GraphEvent.encode()`` (``data: {json}\\n\\n``).

When the client goes away, the response closes its iterator, which cancels the graph run: the
node and run spans end with ``graphai.node.outcome`` / ``graphai.run.outcome`` = ``cancelled``
(not an error). With ``opentelemetry-instrumentation-fastapi`` the run span is a child of the
HTTP request span, so one trace shows the request, the graph run and every node.

Run it (``pip install uvicorn`` first)::

    python examples/fastapi_sse.py            # serves on 127.0.0.1:8000
    curl -N -X POST localhost:8000/stream -H 'content-type: application/json' \\
         -d '{"query": "How do refunds work?"}'

Telemetry: ``graphai.telemetry.configure()`` (OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set,
Prometheus ``/metrics`` on 127.0.0.1:9464).

Several worker processes (docs/operations.md, "Multi-worker servers"): ``serve_app`` is an app
factory whose app configures telemetry in its lifespan startup, which runs in the worker that
serves it (under gunicorn ``--preload`` too, where the factory itself runs in the master), so
each worker has its own ``service.instance.id`` and, with ``GRAPHAI_PROMETHEUS_PORTS``, its own
``/metrics`` port::

    GRAPHAI_PROMETHEUS_ADDR=127.0.0.1:9464 GRAPHAI_PROMETHEUS_PORTS=2 \
        uvicorn --app-dir examples --factory fastapi_sse:serve_app --workers 2 --port 8000
    curl localhost:8000/whoami     # the worker's pid, service.instance.id and /metrics address

Every SSE response also names the worker that served it (``X-Worker-Pid``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from graphai import Callback, EventCallback, Graph, GraphEvent, node

# -- the graph ---------------------------------------------------------------------------------


@node(start=True)
async def retrieve(query: str) -> dict[str, Any]:
    await asyncio.sleep(0.01)  # a vector search, say
    return {"context": ["refund-policy", "payment-methods"], "query": query}


@node(end=True, stream=True, kind="llm", model="demo-model")
async def answer(query: str, context: list[str], callback: Any, delay: float = 0.01) -> dict[str, Any]:
    """Streams an answer; one token spans several lines (a code block) on purpose."""
    tokens = [
        "Refunds",
        " go",
        " back",
        " to",
        " the",
        " original",
        " payment",
        " method",
        f" (see {context[0]}).",
        "\n\n```bash\ncurl -X POST /refunds\n```\n",
        "Anything",
        " else?",
    ]
    for tok in tokens:
        await asyncio.sleep(delay)
        await callback.acall(tok)
    return {"answer": "".join(tokens)}


def build_graph() -> Graph:
    graph = Graph(name="sse-demo")
    graph.add_node(retrieve()).add_node(answer()).add_edge(retrieve, answer)
    return graph.compile()


# -- SSE framing -------------------------------------------------------------------------------
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def sse_frame(data: str, event: str | None = None) -> bytes:
    """One SSE event: ``data: <line>`` for every line of ``data`` (so multi-line tokens
    survive), an optional ``event:`` field, and the blank line that ends the event."""
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return (head + body + "\n").encode("utf-8")


def parse_sse(raw: str) -> list[tuple[str | None, str]]:
    """The inverse of :func:`sse_frame` for a whole response body: ``[(event, data)]``."""
    events: list[tuple[str | None, str]] = []
    for block in raw.split("\n\n"):
        if not block:
            continue
        name: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


class SSEResponse(StreamingResponse):
    """A ``text/event-stream`` response that always closes its iterator when it ends, also
    when the client disconnects: the stream's ``finally`` (which cancels the graph run) runs at
    once instead of whenever the generator is garbage-collected."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content,
            headers={
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
                "X-Worker-Pid": str(os.getpid()),  # which worker process served the stream
            },
        )
        self._content = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._content, "aclose", None)
            if aclose is not None:
                await aclose()


async def stream_run(
    graph: Graph,
    payload: dict[str, Any],
    callback: Callback | EventCallback,
    frame: Callable[[Any], bytes],
) -> AsyncIterator[bytes]:
    """Run the graph and yield its stream, framed. The run starts on the first read (inside
    the request's trace context) and is cancelled if the consumer stops early."""
    run = asyncio.ensure_future(graph.execute(payload, callback=callback))
    try:
        async for item in callback.aiter():
            yield frame(item)
        try:
            await run
        except Exception as exc:  # the stream already ended with END; tell the client why
            yield sse_frame(json.dumps({"error": type(exc).__name__}), event="error")
    finally:
        if not run.done():
            run.cancel()  # the client is gone: node and run spans end as `cancelled`
            run.add_done_callback(_retrieve)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # keep asyncio from logging "exception was never retrieved"


# -- the app -----------------------------------------------------------------------------------
class Query(BaseModel):
    query: str
    delay: float = 0.01


def create_app(
    graph: Graph | None = None,
    tracer_provider: Any = None,
    telemetry: Any = None,
    configure_telemetry: bool = False,
) -> FastAPI:
    """The app. With ``opentelemetry-instrumentation-fastapi`` installed, requests get server
    spans (from ``tracer_provider``, default: the global one) that the graph runs nest under.
    ``telemetry``: a ``TelemetryHandle`` that ``/whoami`` describes and the app's shutdown
    closes; ``configure_telemetry``: the app's startup calls ``graphai.telemetry.configure()``
    itself (in the process that serves it) and its shutdown closes that handle."""
    graph = graph or build_graph()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_telemetry:
            import graphai.telemetry

            app.state.telemetry = graphai.telemetry.configure(service_name="graphai-sse-example")
        try:
            yield
        finally:
            if app.state.telemetry is not None:
                app.state.telemetry.shutdown()

    app = FastAPI(title="graphai SSE example", lifespan=lifespan)
    app.state.telemetry = telemetry

    @app.get("/whoami")
    async def whoami() -> dict[str, Any]:
        """This worker process: pid, ``service.instance.id``, its ``/metrics`` address."""
        handle = app.state.telemetry
        resource = getattr(getattr(handle, "tracer_provider", None), "resource", None)
        attributes = dict(getattr(resource, "attributes", {}) or {})
        return {
            "pid": os.getpid(),
            "service.instance.id": attributes.get("service.instance.id"),
            "prometheus_addr": getattr(handle, "prometheus_addr", None),
        }

    @app.post("/stream")
    async def stream(q: Query) -> SSEResponse:
        callback = Callback()
        return SSEResponse(
            stream_run(graph, {"query": q.query, "delay": q.delay}, callback, sse_frame)
        )

    @app.post("/events")
    async def events(q: Query) -> SSEResponse:
        callback = EventCallback(identifier=uuid.uuid4().hex)

        def frame(event: GraphEvent) -> bytes:
            return event.encode()

        return SSEResponse(stream_run(graph, {"query": q.query, "delay": q.delay}, callback, frame))

    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:  # pragma: no cover - optional
        pass
    else:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracer_provider, exclude_spans=["receive", "send"]
        )
    return app


def serve_app() -> FastAPI:
    """App factory for ``uvicorn --factory`` and gunicorn's uvicorn workers. Telemetry is
    configured from the environment in the app's lifespan startup, so in each worker process
    after any fork (``GRAPHAI_PROMETHEUS_ADDR`` + ``GRAPHAI_PROMETHEUS_PORTS``: one ``/metrics``
    port per worker; ``OTEL_EXPORTER_OTLP_ENDPOINT``: OTLP push, told apart by
    ``service.instance.id``): under gunicorn ``--preload`` the master, which loads the app but
    serves nothing, binds no port."""
    if not logging.getLogger().handlers:  # show telemetry.prometheus_started (the bound port)
        logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
    return create_app(configure_telemetry=True)


def main() -> int:
    try:
        import uvicorn
    except ImportError:
        print("examples/fastapi_sse.py: `pip install uvicorn` to serve this app")
        return 0
    uvicorn.run(create_app(configure_telemetry=True), host="127.0.0.1", port=8000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
