"""Driving a graph with a concurrent consumer of its stream; every wait bounded."""

from __future__ import annotations

import asyncio
from typing import Any

from graphai import Callback

TIMEOUT = 5


async def drain(cb: Any) -> list[Any]:
    """Everything ``cb.aiter()`` yields, until END."""
    return [t async for t in cb.aiter()]


async def run_with_consumer(
    graph: Any, inp: dict[str, Any], cb: Any = None
) -> tuple[dict[str, Any] | None, BaseException | None, list[Any]]:
    """Execute ``graph`` while a concurrent consumer drains the callback.

    Returns ``(result, error, items)``: ``error`` is the exception ``execute`` raised, if any.
    A consumer that never sees END fails the test with ``TimeoutError`` after ``TIMEOUT``
    seconds instead of hanging.
    """
    cb = Callback() if cb is None else cb
    consumer = asyncio.ensure_future(drain(cb))
    result = error = None
    try:
        result = await asyncio.wait_for(graph.execute(inp, callback=cb), TIMEOUT)
    except Exception as exc:
        error = exc
    items = await asyncio.wait_for(consumer, TIMEOUT)
    return result, error, items
