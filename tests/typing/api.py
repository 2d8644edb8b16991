"""User-facing API, type-checked by mypy --strict (never executed): see tests/test_typing.py."""

from __future__ import annotations

import asyncio
from typing import Any

from graphai import Callback, EventCallback, Graph, GraphEvent, node, parse_stream_token, router


@node(start=True)
async def prep(query: str) -> dict[str, Any]:
    return {"query": query}


@node(end=True, stream=True, kind="llm", model="m")
async def answer(query: str, callback: Callback) -> dict[str, Any]:
    await callback.acall(query)
    return {"answer": query}


@router
async def pick(query: str) -> dict[str, Any]:
    return {"choice": "answer"}


def build() -> Graph:
    return Graph(name="typed").add_node(prep()).add_node(answer()).add_edge(prep, answer)


async def main() -> dict[str, Any]:
    cb = Callback(max_buffered=10)
    consumer = asyncio.ensure_future(consume(cb))
    result = await build().execute({"query": "q"}, callback=cb)
    tokens: list[str] = await consumer
    return {**result, "tokens": tokens}


async def consume(cb: Callback) -> list[str]:
    out: list[str] = []
    async for token in cb.aiter():
        item = parse_stream_token(token, cb)
        if item.kind == "token":
            out.append(item.text)
    return out


def encode(ev: GraphEvent) -> bytes:
    return ev.encode()


class MyCallback(Callback):
    """An upstream-style subclass, set as the graph's callback class."""


async def by_name() -> list[dict[str, Any]]:
    g = Graph(name="names").add_node(prep).add_node(answer).add_edge("prep", "answer")
    g.set_callback(MyCallback).add_parallel(prep, [answer]).set_end_node(answer)
    results: list[dict[str, Any]] = await g.execute_many([{"query": "a"}], concurrency=2)
    return results


def fan_out(width: int) -> Graph:
    """A list of nodes built in a loop (its element type inferred, not NodeRef) is accepted by
    add_parallel and add_join, and so is a tuple: they take a Sequence, not an invariant list."""

    async def leaf(query: str) -> dict[str, Any]:
        return {"query": query}

    branches = [node(leaf) for _ in range(width)]
    g = Graph(name="fan").add_node(prep).add_node(answer)
    for b in branches:
        g.add_node(b)
    return g.add_parallel(prep, branches).add_join(tuple(branches), answer)


_ = (EventCallback, pick)
