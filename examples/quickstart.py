"""
Quickstart: a minimal graph that streams, and what its consumer sees.

    python examples/quickstart.py

Two nodes: ``prepare`` (start) cleans the question, ``answer`` (end, ``stream=True``) streams
its reply through the callback. ``execute()`` runs the graph; ``callback.aiter()`` yields the
stream: node markers (``<graphai:answer:start:>`` ...), the tokens, and ``<graphai:END:>``.

Telemetry costs nothing until you turn it on: add ``graphai.telemetry.configure()`` (extra
``[otel]``) and every run and node becomes a span, with time-to-first-token and token-rate
metrics (see docs/telemetry.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from graphai import Callback, Graph, node, parse_stream_token


@node(start=True)
async def prepare(question: str) -> dict[str, Any]:
    return {"question": question.strip().rstrip("?") + "?"}


@node(end=True, stream=True)
async def answer(question: str, callback: Any) -> dict[str, Any]:
    words = ["graphai", " runs", " async", " nodes", " as", " a", " graph", " and", " streams", " tokens."]
    for word in words:
        await asyncio.sleep(0.02)  # an LLM would be producing these
        await callback.acall(word)
    return {"answer": "".join(words)}


graph = Graph(name="quickstart")
graph.add_node(prepare()).add_node(answer()).add_edge(prepare, answer).compile()


async def main() -> dict[str, Any]:
    callback = Callback()
    run = asyncio.create_task(graph.execute({"question": "what is graphai "}, callback=callback))
    at_line_start = True
    async for token in callback.aiter():  # ends after <graphai:END:>
        if parse_stream_token(token).kind == "token":
            print(token, end="", flush=True)  # content
            at_line_start = False
        else:  # a node marker or END, on a line of its own
            print(("" if at_line_start else "\n") + token, flush=True)
            at_line_start = True
    result = await run
    print("result:", result)
    return result


if __name__ == "__main__":
    asyncio.run(main())
