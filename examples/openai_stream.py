"""
A real LLM node: OpenAI chat completions streamed through the callback.

    pip install openai
    OPENAI_API_KEY=sk-... python examples/openai_stream.py "Explain SSE in one paragraph"

Without ``OPENAI_API_KEY`` (or without the ``openai`` package) it says so and exits 0.
``OPENAI_MODEL`` picks the model (default ``gpt-4o-mini``); ``OPENAI_BASE_URL`` points the
client at any OpenAI-compatible server.

The node is the one from the Callback guide: ``stream=True`` injects the callback and every
chunk goes out with ``await callback.acall(content)``. Declaring ``kind="llm"`` and ``model``
names its span ``chat {model}`` and records the GenAI client metrics. At the end the example
prints what telemetry measured for the call: time to first chunk, chunks, chunk rate.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from typing import Any

from graphai import Graph, node, parse_stream_token

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")


@node(start=True, end=True, stream=True, kind="llm", model=MODEL)
async def llm_node(query: str, callback: Any) -> dict[str, Any]:
    """Stream output from an LLM."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI()
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": query},
        ],
        stream=True,
    )
    response_text = ""
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            content = chunk.choices[0].delta.content
            response_text += content
            await callback.acall(content)
    return {"response": response_text}


def build_graph() -> Graph:
    graph = Graph(name="openai-stream")
    graph.add_node(llm_node())
    return graph.compile()


async def run(query: str) -> dict[str, Any]:
    graph = build_graph()
    callback = graph.get_callback()
    task = asyncio.create_task(graph.execute({"query": query}, callback=callback))
    async for token in callback.aiter():
        if parse_stream_token(token, callback).kind == "token":
            print(token, end="", flush=True)
    print()
    return await task


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    query = " ".join(args) or "In two sentences: what is time to first token, and why measure it?"
    if not os.environ.get("OPENAI_API_KEY"):
        print("examples/openai_stream.py: OPENAI_API_KEY is not set; nothing to do.")
        return 0
    if importlib.util.find_spec("openai") is None:
        print("examples/openai_stream.py: the `openai` package is not installed (pip install openai).")
        return 0

    import graphai.telemetry

    exporter = None
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:  # no [otel] extra: run without the summary
        handle = None
    else:
        handle = graphai.telemetry.configure(
            service_name="graphai-openai-example", prometheus_addr=False, set_global=False
        )
        if isinstance(handle.tracer_provider, TracerProvider):
            exporter = InMemorySpanExporter()
            handle.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        result = asyncio.run(run(query))
    finally:
        if handle is not None:
            handle.shutdown()
    print(f"({len(result['response'])} characters)")
    for span in exporter.get_finished_spans() if exporter is not None else ():
        a = span.attributes or {}
        if span.name.startswith("chat "):
            ttfc = a.get("gen_ai.response.time_to_first_chunk")
            tpot = a.get("graphai.node.time_per_output_token")
            print(
                f"{span.name}: time to first chunk "
                f"{'-' if ttfc is None else f'{ttfc:.3f} s'}, "
                f"{a.get('graphai.node.output.tokens', 0)} chunks"
                + (f", {1 / tpot:.1f} chunks/s" if tpot else "")
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
