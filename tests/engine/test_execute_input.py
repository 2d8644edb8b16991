"""Wrong input to ``execute()`` and ``execute_many()`` raises at once naming the argument;
nothing hangs (every wait is bounded), a consumer of the caller's stream still sees END and the
caller's input is unchanged."""

import asyncio

import pytest

from graphai import (
    Graph,
    node,
)
from tests._stream import TIMEOUT, run_with_consumer
from tests.engine._support import base_graph


class TestExecuteInput:
    """`execute()` input must be a dict: anything else raises `TypeError` naming `input` and
    the type given, at once; a callback passed along is still closed."""

    @pytest.mark.parametrize("bad", [[1], None, "q", (("k", 1),), 3])
    async def test_non_dict_input(self, bad):
        g, *_ = base_graph()
        with pytest.raises(TypeError) as ei:
            await asyncio.wait_for(g.execute(input=bad), TIMEOUT)
        msg = str(ei.value)
        assert "input" in msg
        assert type(bad).__name__ in msg

    async def test_non_dict_input_still_ends_the_callers_stream(self):
        g, *_ = base_graph()
        inp = [1]
        _, error, items = await run_with_consumer(g, inp)
        assert type(error) is TypeError
        assert items == ["<graphai:END:>"]
        assert inp == [1]

    async def test_missing_start_node_still_ends_the_callers_stream(self):
        g = Graph()

        @node(end=True)
        async def end():
            return {}

        g.add_node(end)
        _, error, items = await run_with_consumer(g, {})
        assert type(error) is AssertionError
        assert items == ["<graphai:END:>"]

    async def test_missing_required_parameter_is_reported_not_hung(self):
        @node(start=True, end=True, stream=True)
        async def needs(query: str, callback):
            await callback.acall(query)
            return {}

        inp = {"other": 1}
        result, error, items = await run_with_consumer(Graph().add_node(needs), inp)
        assert result is None
        assert type(error) is ValueError
        assert str(error) == "Missing required parameters for the needs node: query"
        assert items == [
            "<graphai:needs:start:>",
            "<graphai:needs:>",
            "<graphai:needs:end:>",
            "<graphai:END:>",
        ]
        assert inp == {"other": 1}

    async def test_callback_param_without_stream_is_reported_not_hung(self):
        @node(start=True, end=True)
        async def a(callback=None):
            return {}

        _, error, items = await run_with_consumer(Graph().add_node(a), {})
        assert type(error) is ValueError
        assert str(error) == "Node a: requires stream=True when callback is defined."
        assert items == ["<graphai:END:>"]


class TestExecuteMany:
    """`execute_many` rejects a non-positive `concurrency` at once (upstream's
    `Semaphore(0)` would wait forever) and non-dict inputs with `TypeError`."""

    @pytest.mark.parametrize("concurrency", [0, -1])
    async def test_bad_concurrency(self, concurrency):
        g, *_ = base_graph()
        with pytest.raises(ValueError) as ei:
            await asyncio.wait_for(g.execute_many([{}], concurrency=concurrency), TIMEOUT)
        assert "concurrency" in str(ei.value)

    async def test_non_dict_item(self):
        g, *_ = base_graph()
        with pytest.raises(TypeError) as ei:
            await asyncio.wait_for(g.execute_many([{}, [1]]), TIMEOUT)
        assert "input" in str(ei.value)
