"""``callback.queue`` is an ``asyncio.Queue`` (upstream's ``Callback.queue`` was a plain
``asyncio.Queue()``), sharing its storage with ``aiter()``: code written for graphai-lib that
drains the queue directly, or puts into it, keeps working.

Items read through the queue are what ``aiter()`` would yield (special tokens rendered as
strings such as ``<graphai:n:start:>``, ``GraphEvent`` objects for ``EventCallback``), and
reading them consumes them.
"""

import asyncio
from time import perf_counter

import pytest

from graphai import Callback, EventCallback, Graph, GraphEvent, GraphEventType, node
from graphai._channel import Timed

TIMEOUT = 2.0


def drain_nowait(q: asyncio.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


class TestIsAQueue:
    """``callback.queue`` is one ``asyncio.Queue`` per callback, made outside a loop, empty,
    bounded like the callback."""

    def test_isinstance(self):
        for cb in (Callback(), EventCallback(), Callback(max_buffered=4)):
            assert isinstance(cb.queue, asyncio.Queue)
            assert cb.queue is cb.queue

    def test_created_outside_a_loop_and_empty(self):
        q = Callback().queue
        assert q.qsize() == 0
        assert q.empty()
        assert not q.full()
        assert q.maxsize == 0
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()

    def test_bounded_maxsize(self):
        assert Callback(max_buffered=3).queue.maxsize == 3

    def test_repr(self):
        cb = Callback()
        cb("a")
        assert "qsize=1" in repr(cb.queue)


class TestUpstreamDrainPatterns:
    """Upstream's ways of draining the queue (``get_nowait()`` until ``empty()``, ``await
    get()``) read what ``aiter()`` would yield, in order; a cancelled ``get()`` loses nothing."""

    async def test_tokens_then_close(self):
        cb = Callback()
        cb("a")
        await cb.acall("b")
        await cb.close()
        q = cb.queue
        assert q.qsize() == 3
        assert [q.get_nowait() for _ in range(3)] == ["a", "b", "<graphai:END:>"]
        assert q.empty()
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()

    async def test_node_markers_are_rendered_strings(self):
        cb = Callback()
        await cb.start_node("n")
        await cb.acall("Hel")
        cb("lo")
        await cb.end_node("n")
        await cb.close()
        assert drain_nowait(cb.queue) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "Hel",
            "lo",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]

    async def test_custom_special_token_format(self):
        cb = Callback(identifier="demo", special_token_format="[{identifier}|{token}|{params}]")
        await cb.start_node("n")
        await cb.end_node("n")
        await cb.close()
        assert drain_nowait(cb.queue) == [
            "[demo|n:start|]",
            "[demo|n|]",
            "[demo|n:end|]",
            "[demo|END|]",
        ]

    async def test_tokens_pass_through_unchanged(self):
        cb = Callback()
        obj = {"not": "a str"}
        cb(obj)
        cb(42)
        assert drain_nowait(cb.queue) == [obj, 42]

    async def test_token_format_applied_as_by_aiter(self):
        cb = Callback(token_format="<<{token}>>")
        cb("x")
        cb(1)
        await cb.close()
        assert drain_nowait(cb.queue) == ["<<x>>", 1, "<graphai:END:>"]

    async def test_event_callback_queue_holds_graph_events(self):
        cb = EventCallback(identifier="s1")
        await cb.start_node("n")
        await cb.acall("hi")
        cb(token="t", type="tool_call", params={"a": 1})
        await cb.end_node("n")
        await cb.close()
        assert drain_nowait(cb.queue) == [
            GraphEvent(GraphEventType.START_NODE, "s1", "n"),
            GraphEvent(GraphEventType.CALLBACK, "s1", "hi"),
            GraphEvent("tool_call", "s1", "t", {"a": 1}),
            GraphEvent(GraphEventType.END_NODE, "s1", "n"),
            GraphEvent(GraphEventType.END, "s1"),
        ]

    async def test_get_waits_for_a_later_token(self):
        cb = Callback()

        async def later():
            await asyncio.sleep(0.01)
            await cb.acall("late")

        task = asyncio.create_task(later())
        assert await asyncio.wait_for(cb.queue.get(), TIMEOUT) == "late"
        await task

    async def test_get_waits_for_a_sync_token_and_for_end(self):
        cb = Callback()

        async def later():
            await asyncio.sleep(0.01)
            cb("x")
            await asyncio.sleep(0.01)
            await cb.close()

        task = asyncio.create_task(later())
        assert await asyncio.wait_for(cb.queue.get(), TIMEOUT) == "x"
        assert await asyncio.wait_for(cb.queue.get(), TIMEOUT) == "<graphai:END:>"
        await task

    async def test_cancelled_get_loses_nothing(self):
        cb = Callback()
        getter = asyncio.create_task(cb.queue.get())
        await asyncio.sleep(0)
        getter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await getter
        cb("kept")
        assert await asyncio.wait_for(cb.queue.get(), TIMEOUT) == "kept"

    async def test_two_getters_both_served(self):
        cb = Callback()
        g1 = asyncio.create_task(cb.queue.get())
        g2 = asyncio.create_task(cb.queue.get())
        await asyncio.sleep(0)
        cb("a")
        cb("b")
        got = await asyncio.wait_for(asyncio.gather(g1, g2), TIMEOUT)
        assert sorted(got) == ["a", "b"]

    async def test_timed_items_unwrapped(self):
        # with telemetry sampling, a content token travels wrapped with its put time
        cb = Callback()
        delays: list[float] = []
        cb._chan.on_delay = delays.append
        cb._chan.put(Timed("tok", perf_counter()))
        assert cb.queue.get_nowait() == "tok"
        assert len(delays) == 1 and delays[0] >= 0


class TestPutNowait:
    """What is put into the queue is content for ``aiter()``; a bounded queue raises
    ``QueueFull`` and ``put()`` waits, as asyncio's."""

    async def test_put_nowait_then_aiter_sees_it(self):
        cb = Callback()
        cb.queue.put_nowait("from-user")
        await cb.acall("b")
        await cb.close()
        got = [t async for t in cb.aiter()]
        assert got == ["from-user", "b", "<graphai:END:>"]

    async def test_put_nowait_wakes_a_waiting_aiter(self):
        cb = Callback()

        async def consume():
            return [t async for t in cb.aiter()]

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)
        cb.queue.put_nowait("x")
        await asyncio.sleep(0.01)
        await cb.close()
        assert await asyncio.wait_for(task, TIMEOUT) == ["x", "<graphai:END:>"]

    async def test_put_then_get(self):
        cb = Callback()
        await cb.queue.put("p")
        assert cb.queue.qsize() == 1
        assert await cb.queue.get() == "p"

    async def test_bounded_put_nowait_raises_queue_full_and_put_waits(self):
        cb = Callback(max_buffered=2)
        q = cb.queue
        q.put_nowait(1)
        q.put_nowait(2)
        assert q.full()
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(3)
        putter = asyncio.create_task(q.put(3))
        await asyncio.sleep(0.01)
        assert not putter.done()
        assert q.get_nowait() == 1
        await asyncio.wait_for(putter, TIMEOUT)
        assert drain_nowait(q) == [2, 3]


class TestBackpressure:
    """Reads through the queue release a producer waiting on the bound; sync calls still
    ignore the bound."""

    async def test_queue_reads_release_a_waiting_producer(self):
        cb = Callback(max_buffered=2)
        n = 20

        async def produce():
            for i in range(n):
                await cb.acall(str(i))
                assert len(cb._chan.buf) <= 2
            await cb.close()

        task = asyncio.create_task(produce())
        got = []
        while True:
            t = await asyncio.wait_for(cb.queue.get(), TIMEOUT)
            got.append(t)
            if t == "<graphai:END:>":
                break
        await task
        assert got == [str(i) for i in range(n)] + ["<graphai:END:>"]

    async def test_sync_call_still_ignores_the_bound(self):
        cb = Callback(max_buffered=1)
        cb("a")
        cb("b")
        assert cb.queue.qsize() == 2
        assert cb.queue.full()


class TestTaskDoneJoin:
    """``task_done()`` and ``join()`` keep asyncio's semantics; items taken by ``aiter()``
    count as done."""

    async def test_task_done_and_join(self):
        cb = Callback()
        q = cb.queue
        cb("a")
        cb("b")
        joined = asyncio.create_task(q.join())
        await asyncio.sleep(0)
        assert not joined.done()
        assert await q.get() == "a"
        q.task_done()
        assert await q.get() == "b"
        await asyncio.sleep(0)
        assert not joined.done()
        q.task_done()
        await asyncio.wait_for(joined, TIMEOUT)
        with pytest.raises(ValueError, match="task_done\\(\\) called too many times"):
            q.task_done()

    async def test_join_returns_at_once_when_nothing_is_pending(self):
        q = Callback().queue
        await asyncio.wait_for(q.join(), TIMEOUT)
        with pytest.raises(ValueError):
            q.task_done()

    async def test_worker_pattern(self):
        cb = Callback()
        seen = []

        async def worker():
            while True:
                item = await cb.queue.get()
                seen.append(item)
                cb.queue.task_done()

        w = asyncio.create_task(worker())
        for i in range(5):
            await cb.acall(i)
        await asyncio.wait_for(cb.queue.join(), TIMEOUT)
        assert seen == [0, 1, 2, 3, 4]
        w.cancel()
        with pytest.raises(asyncio.CancelledError):
            await w

    async def test_items_taken_by_aiter_count_as_done(self):
        cb = Callback()

        async def produce():
            for t in "abc":
                await cb.acall(t)
                await asyncio.sleep(0)
            await cb.close()

        prod = asyncio.create_task(produce())
        await asyncio.sleep(0)
        joined = asyncio.create_task(cb.queue.join())
        got = [t async for t in cb.aiter()]
        await prod
        await asyncio.wait_for(joined, TIMEOUT)
        assert got == ["a", "b", "c", "<graphai:END:>"]


class TestMixingWithAiter:
    """The queue and ``aiter()`` share one buffer: what one reads the other does not see, END
    read through the queue ends the stream, and node views share the root's queue."""

    async def test_queue_reads_consume(self):
        cb = Callback()
        cb("a")
        cb("b")
        await cb.close()
        assert cb.queue.get_nowait() == "a"
        assert [t async for t in cb.aiter()] == ["b", "<graphai:END:>"]
        assert cb.queue.empty()

    async def test_end_read_through_queue_ends_the_stream(self):
        cb = Callback()
        cb("a")
        await cb.close()
        assert drain_nowait(cb.queue) == ["a", "<graphai:END:>"]
        assert [t async for t in cb.aiter()] == []  # as upstream: done and empty
        assert cb.closed

    async def test_after_aiter_the_queue_is_empty(self):
        cb = Callback()
        cb("a")
        await cb.close()
        assert [t async for t in cb.aiter()] == ["a", "<graphai:END:>"]
        assert cb.queue.empty()

    async def test_aiter_and_get_waiting_together_are_both_woken(self):
        cb = Callback()
        got_aiter: list = []

        async def consume():
            async for t in cb.aiter():
                got_aiter.append(t)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.01)  # aiter parks on the empty buffer
        getter = asyncio.create_task(cb.queue.get())
        await asyncio.sleep(0.01)  # and so does get()
        cb("x")
        await asyncio.sleep(0.01)
        cb("y")
        await asyncio.sleep(0.01)
        first = await asyncio.wait_for(getter, TIMEOUT)
        await cb.close()
        await asyncio.wait_for(task, TIMEOUT)
        assert sorted([first, *got_aiter[:-1]]) == ["x", "y"]
        assert got_aiter[-1] == "<graphai:END:>"

    async def test_view_shares_the_queue(self):
        @node(start=True, end=True, stream=True)
        async def s(callback):
            assert callback.queue is root.queue
            await callback.acall("t")
            return {}

        root = Callback()
        await Graph().add_node(s).execute({}, callback=root)
        assert drain_nowait(root.queue) == [
            "<graphai:s:start:>",
            "<graphai:s:>",
            "t",
            "<graphai:s:end:>",
            "<graphai:END:>",
        ]


async def drain_with_get(cb) -> list:
    out = []
    while True:
        item = await cb.queue.get()
        out.append(item)
        if item == "<graphai:END:>" or (
            isinstance(item, GraphEvent) and item.type == GraphEventType.END
        ):
            return out


class TestThroughAGraph:
    """A consumer draining the queue with ``get()`` during a graph run reads the whole stream,
    for ``Callback`` and ``EventCallback``, bounded or not."""

    async def test_callback_consumer_drains_the_queue(self):
        @node(start=True)
        async def first(input: dict):
            return {"output": input["text"].upper()}

        @node(end=True, stream=True)
        async def second(output: str, callback):
            for t in ["Hel", "lo", " world"]:
                await callback.acall(t)
                await asyncio.sleep(0)
            return {"output": output}

        g = Graph().add_node(first).add_node(second).add_edge(first, second)
        cb = g.get_callback()
        consumer = asyncio.create_task(drain_with_get(cb))
        result = await g.execute({"input": {"text": "hi!"}}, callback=cb)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert result["output"] == "HI!"
        assert items == [
            "<graphai:second:start:>",
            "<graphai:second:>",
            "Hel",
            "lo",
            " world",
            "<graphai:second:end:>",
            "<graphai:END:>",
        ]
        assert cb.queue.empty()

    async def test_event_callback_consumer_drains_the_queue(self):
        @node(start=True)
        async def s():
            return {}

        @node(end=True, stream=True)
        async def llm(callback):
            await callback.acall("Hello")
            await callback.acall(token="tool", type="tool_call", params={"q": "x"})
            return {}

        g = Graph().add_node(s).add_node(llm).add_edge(s, llm).set_callback(EventCallback)
        cb = g.get_callback()
        consumer = asyncio.create_task(drain_with_get(cb))
        await g.execute({}, callback=cb)
        events = await asyncio.wait_for(consumer, TIMEOUT)
        assert [(e.type, e.token, e.params) for e in events] == [
            (GraphEventType.START_NODE, "llm", None),
            (GraphEventType.CALLBACK, "Hello", None),
            ("tool_call", "tool", {"q": "x"}),
            (GraphEventType.END_NODE, "llm", None),
            (GraphEventType.END, None, None),
        ]

    async def test_bounded_graph_run_with_queue_consumer(self):
        @node(start=True, end=True, stream=True)
        async def s(callback):
            for i in range(50):
                await callback.acall(str(i))
            return {}

        cb = Callback(max_buffered=4)
        consumer = asyncio.create_task(drain_with_get(cb))
        await asyncio.wait_for(Graph().add_node(s).execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items[2:-2] == [str(i) for i in range(50)]
        assert items[-1] == "<graphai:END:>"
