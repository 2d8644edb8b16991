"""Helpers shared by the ``tests/compat`` modules."""

from graphai import node
from tests._stream import run_with_consumer


async def execute_streamed(graph, inp, cb=None):
    result, error, items = await run_with_consumer(graph, inp, cb)
    if error is not None:
        raise error
    return result, items


def _nodes():
    @node(start=True)
    async def a():
        return {}

    @node
    async def b():
        return {}

    @node
    async def c():
        return {}

    @node(end=True)
    async def end():
        return {}

    return a, b, c, end
