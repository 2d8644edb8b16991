"""The end of the stream (fixes 1, 6 and 7): ``execute()`` always ends the stream with END, a
cancelled consumer of ``aiter()`` ends cancelled, and only the real END ends the stream, not a
content token equal to its string."""

import asyncio

import pytest

from graphai import Callback, Graph, node
from tests._stream import TIMEOUT, drain, run_with_consumer


class TestFix01StreamAlwaysEnds:
    """`execute()` always ends the stream with END: without streaming nodes, with streaming only
    inside parallel paths or branches, and when a node raises (the exception still propagates;
    the failing node's markers stay balanced)."""

    async def test_graph_without_streaming_nodes(self):
        """Fails on upstream because END is only sent when a `callback` key survives into the
        final payload, which needs a streaming node on the main path: the consumer hangs."""

        @node(start=True, end=True)
        async def plain():
            return {"p": 1}

        result, error, items = await run_with_consumer(Graph().add_node(plain), {})
        assert error is None
        assert result == {"p": 1}
        assert items == ["<graphai:END:>"]

    async def test_streaming_only_inside_parallel_paths(self):
        """Fails on upstream because the fork merge drops the `callback` key, so `execute()`
        never closes the callback and the consumer hangs after the last end marker."""

        @node(start=True)
        async def start():
            return {}

        @node(stream=True)
        async def p(callback):
            await callback.acall("p-tok")
            return {"p": 1}

        @node(stream=True)
        async def q(callback):
            await callback.acall("q-tok")
            return {"q": 1}

        @node(end=True)
        async def end():
            return {}

        g = Graph()
        for n in (start, p, q, end):
            g.add_node(n)
        g.add_parallel(start, [p, q]).add_join([p, q], end)
        result, error, items = await run_with_consumer(g, {})
        assert error is None
        assert result == {"p": 1, "q": 1}
        assert sorted(items[:-1]) == sorted(
            [
                "<graphai:p:start:>",
                "<graphai:p:>",
                "p-tok",
                "<graphai:p:end:>",
                "<graphai:q:start:>",
                "<graphai:q:>",
                "q-tok",
                "<graphai:q:end:>",
            ]
        )
        assert items[-1] == "<graphai:END:>"

    async def test_streaming_only_inside_a_branch(self):
        """Fails on upstream because branch pipeline results never reach the main payload, so
        no `callback` key survives and END is never sent: the consumer hangs."""

        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {"done": True}

        @node(stream=True)
        async def side(callback):
            await callback.acall("side-tok")
            return {}

        g = Graph().add_node(work).add_node(done).add_node(side)
        g.add_edge(work, done).add_branch(work, side)
        result, error, items = await run_with_consumer(g, {})
        assert error is None
        assert result == {"done": True}
        assert items == [
            "<graphai:side:start:>",
            "<graphai:side:>",
            "side-tok",
            "<graphai:side:end:>",
            "<graphai:END:>",
        ]

    async def test_node_error_ends_stream_and_propagates(self):
        """Fails on upstream because a raising node leaves the callback open (no end marker,
        no END): the consumer hangs although `execute()` has raised."""

        @node(start=True, end=True, stream=True)
        async def boom(callback):
            await callback.acall("partial")
            raise RuntimeError("boom")

        result, error, items = await run_with_consumer(Graph().add_node(boom), {})
        assert result is None
        assert type(error) is RuntimeError
        assert str(error) == "boom"
        assert items == [
            "<graphai:boom:start:>",
            "<graphai:boom:>",
            "partial",
            "<graphai:boom:end:>",
            "<graphai:END:>",
        ]

    async def test_error_in_plain_node_after_streaming_node(self):
        """Fails on upstream because the exception skips the final `close()`: the consumer
        sees the first node's markers and then waits forever."""

        @node(start=True, stream=True)
        async def s(callback):
            await callback.acall("ok")
            return {}

        @node(end=True)
        async def bad():
            raise ValueError("bad")

        g = Graph().add_node(s).add_node(bad).add_edge(s, bad)
        _, error, items = await run_with_consumer(g, {})
        assert type(error) is ValueError
        assert items == [
            "<graphai:s:start:>",
            "<graphai:s:>",
            "ok",
            "<graphai:s:end:>",
            "<graphai:END:>",
        ]


class TestFix06CancellationPropagates:
    """Cancelling a consumer of `aiter()` propagates `CancelledError` (the task ends
    cancelled)."""

    async def test_cancelled_consumer_task_is_cancelled(self):
        """Fails on upstream because `aiter()` catches `CancelledError` and breaks: the task
        finishes normally with `[]` and `task.cancelled()` is False."""
        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        await asyncio.sleep(0)
        consumer.cancel()
        done, _ = await asyncio.wait({consumer}, timeout=TIMEOUT)
        assert done == {consumer}
        assert consumer.cancelled()

    async def test_cancelled_mid_stream(self):
        """Fails on upstream because the cancelled consumer's `async for` ends normally and
        returns the items seen so far instead of raising `CancelledError`."""
        cb = Callback()
        seen = []
        started = asyncio.Event()

        async def consume():
            async for t in cb.aiter():
                seen.append(t)
                started.set()

        consumer = asyncio.ensure_future(consume())
        await cb.acall("first")
        await asyncio.wait_for(started.wait(), TIMEOUT)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(consumer, TIMEOUT)
        assert seen == ["first"]


class TestFix07NoInBandEnd:
    """A content token equal to the END string does not end the stream; only the real END
    does."""

    async def test_content_equal_to_end_string(self):
        """Fails on upstream because `aiter()` compares every item with the END string and stops
        at the content token `<graphai:END:>`: the consumer loses `after` and the markers."""

        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("before")
            await callback.acall("<graphai:END:>")
            await callback.acall("after")
            return {}

        _, error, items = await run_with_consumer(Graph().add_node(n), {})
        assert error is None
        assert items == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "before",
            "<graphai:END:>",
            "after",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]
