"""
``Callback`` used on its own as in graphai-lib 0.0.12 (section 7 checks 34-36, section 3.1):
closed-stream errors, a single END, producer/consumer, node-name checks, inactive nodes, and
``CallbackProtocol``.
"""

import asyncio

import pytest

from graphai import Callback, EventCallback
from graphai.callback import CallbackProtocol
from tests._stream import TIMEOUT, drain


class TestStandaloneCallback:
    """Callback used directly: closed-stream errors, one END, node-name checks (checks 34-36)."""

    async def test_closed_stream_errors(self):
        cb = Callback()
        await cb.close()
        with pytest.raises(RuntimeError) as ei:
            await cb.acall("x")
        assert str(ei.value) == "Cannot add tokens to a closed stream"
        with pytest.raises(RuntimeError) as ei:
            cb("x")
        assert str(ei.value) == "Cannot add tokens to a closed stream"
        with pytest.raises(RuntimeError) as ei:
            await cb.start_node("n")
        assert str(ei.value) == "Cannot start node on a closed stream"
        with pytest.raises(RuntimeError) as ei:
            await cb.end_node("n")
        assert str(ei.value) == "Cannot end node on a closed stream"

    async def test_close_twice_queues_one_end(self):
        cb = Callback()
        await cb.close()
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == ["<graphai:END:>"]

    async def test_producer_task_and_consumer(self):
        cb = Callback()

        async def produce():
            for t in ("Hello", "over", "there"):
                await cb.acall(t)
                await asyncio.sleep(0)
            await cb.close()

        producer = asyncio.ensure_future(produce())
        items = await asyncio.wait_for(drain(cb), TIMEOUT)
        await asyncio.wait_for(producer, TIMEOUT)
        assert items == ["Hello", "over", "there", "<graphai:END:>"]
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == []
        with pytest.raises(RuntimeError):
            await cb.acall("late")

    async def test_node_name_mismatch(self):
        cb = Callback()
        await cb.start_node("n1")
        cb("ok", node_name="n1")
        await cb.acall("ok2", node_name="n1")
        with pytest.raises(ValueError) as ei:
            cb("x", node_name="n2")
        assert str(ei.value) == "Node name mismatch: n1 != n2"
        with pytest.raises(ValueError) as ei:
            await cb.acall("x", node_name="n2")
        assert str(ei.value) == "Node name mismatch: n1 != n2"

    async def test_start_and_end_markers(self):
        cb = Callback()
        await cb.start_node("n")
        await cb.acall("t")
        await cb.end_node("n")
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "t",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]
        assert cb.current_node_name == "n"
        assert cb.first_token is False

    async def test_inactive_node_suppresses_only_markers(self):
        cb = Callback()
        await cb.start_node("n", active=False)
        assert cb.active is False
        await cb.acall("t")
        await cb.end_node("n")
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == ["t", "<graphai:END:>"]

    def test_fresh_callback_attributes(self):
        cb = Callback()
        assert (cb.first_token, cb.current_node_name, cb.active) == (True, None, True)

    async def test_cancelled_consumer_closes_the_stream_for_the_producer(self):
        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        await asyncio.sleep(0)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(consumer, TIMEOUT)
        with pytest.raises(RuntimeError) as ei:
            await cb.acall("x")
        assert str(ei.value).startswith("Cannot add tokens to a closed stream")

    def test_callback_protocol(self):
        assert isinstance(Callback(), CallbackProtocol)
        assert isinstance(EventCallback(), CallbackProtocol)
