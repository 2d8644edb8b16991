"""
Consuming a graph's string stream with ``parse_stream_token``.

    python examples/stream_consumer.py

``parse_stream_token(token, callback)`` classifies each string from ``Callback.aiter()``:
``start`` / ``node`` / ``end`` (node markers, with ``.node`` = the node name), ``END`` (the
stream is over) or ``token`` (content). It follows the callback's ``special_token_format``, so a
custom format (here ``[support|NAME|]``) needs no parsing code of your own.

Why not split strings yourself, as older docs did (``token.startswith("<graphai:")`` and
``":start" in token``)? Such checks misfire on content that contains those characters, and the
real markers end with an empty parameter slot: ``<graphai:NAME:start:>``, ``<graphai:END:>``
(not ``<graphai:END>``), so an ``== "<graphai:END>"`` check never matches.

The per-node grouping below is exact as long as one streaming node runs at a time per
stream. Nodes streaming concurrently (parallel paths) interleave their tokens in the one
string stream; their markers stay correct, and the spans still attribute every token to its
node, but for per-token attribution in the consumer use one callback per path, or an
``EventCallback`` and put the node in each event's ``params``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from graphai import Callback, Graph, node, parse_stream_token


@node(start=True, stream=True)
async def outline(topic: str, callback: Any) -> dict[str, Any]:
    for tok in ["1. What", " it", " is", "\n2. Why", " it", " matters"]:
        await asyncio.sleep(0.01)
        await callback.acall(tok)
    return {"outline": 2}


@node(end=True, stream=True)
async def draft(topic: str, callback: Any) -> dict[str, Any]:
    for tok in [f"{topic.capitalize()}", " keeps", " each", " node's", " text", " apart."]:
        await asyncio.sleep(0.01)
        await callback.acall(tok)
    return {"draft": "done"}


graph = Graph(name="stream-consumer")
graph.add_node(outline()).add_node(draft()).add_edge(outline, draft).compile()


async def consume(callback: Callback, echo: bool = True) -> dict[str, str]:
    """Group the stream's content by node; print it as it arrives."""
    texts: dict[str, str] = {}
    current: str | None = None
    async for token in callback.aiter():
        item = parse_stream_token(token, callback)
        if item.kind == "start":
            current = item.node
            texts[item.node or ""] = ""
            if echo:
                print(f"\n--- {item.node} ---", flush=True)
        elif item.kind == "end":
            current = None
        elif item.kind == "END":
            if echo:
                print("\n--- end of stream ---", flush=True)
        elif item.kind == "token" and current is not None:
            texts[current] += item.text
            if echo:
                print(item.text, end="", flush=True)
        # item.kind == "node": the node-id marker right after a start; nothing to do
    return texts


async def main() -> dict[str, str]:
    callback = Callback(identifier="support", special_token_format="[{identifier}|{token}|{params}]")
    run = asyncio.create_task(graph.execute({"topic": "graphai"}, callback=callback))
    texts = await consume(callback)
    await run
    print({name: len(text) for name, text in texts.items()})
    return texts


if __name__ == "__main__":
    asyncio.run(main())
