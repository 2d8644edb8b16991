"""A node function that breaks the node contract (it returns anything but a dict, or it is a
plain ``def``) fails the run with a message naming the node; the stream still ends (markers
balanced, then END) and the caller's input is unchanged."""


import pytest

from graphai import (
    Graph,
    node,
    router,
)
from tests._stream import run_with_consumer


class TestNonDictOutput:
    """A node returning anything but a dict raises upstream's `ValueError`; the stream still
    ends (markers balanced, then END) and the caller's input is unchanged."""

    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("abc", "<class 'str'> from 'abc'"),
            (None, "<class 'NoneType'> from 'None'"),
            ([1, 2], "<class 'list'> from '[1, 2]'"),
            (5, "<class 'int'> from '5'"),
            (("k", 1), "<class 'tuple'> from '('k', 1)'"),
        ],
    )
    async def test_plain_node(self, value, shown):
        @node(start=True, end=True)
        async def a():
            return value

        inp = {"x": {"y": 1}}
        result, error, items = await run_with_consumer(Graph().add_node(a), inp)
        assert result is None
        assert type(error) is ValueError
        assert str(error) == f"Expected dictionary output from node a. Instead, got {shown}."
        assert items == ["<graphai:END:>"]
        assert inp == {"x": {"y": 1}}

    async def test_stream_node_in_the_middle(self):
        @node(start=True)
        async def first():
            return {"v": 1}

        @node(stream=True, name="writer")
        async def w(callback):
            await callback.acall("partial")
            return "not a dict"

        @node(end=True)
        async def last():
            return {}

        g = Graph().add_node(first).add_node(w).add_node(last)
        g.add_edge(first, w).add_edge(w, last)
        inp = {"q": "x"}
        _, error, items = await run_with_consumer(g, inp)
        assert type(error) is ValueError
        assert str(error) == (
            "Expected dictionary output from node writer. Instead, got <class 'str'> from "
            "'not a dict'."
        )
        assert items == [
            "<graphai:writer:start:>",
            "<graphai:writer:>",
            "partial",
            "<graphai:writer:end:>",
            "<graphai:END:>",
        ]
        assert inp == {"q": "x"}

    async def test_router_returning_non_dict(self):
        @router(start=True)
        async def r():
            return "end"

        @node(end=True)
        async def end():
            return {}

        g = Graph().add_node(r).add_node(end).add_edge(r, end)
        _, error, items = await run_with_consumer(g, {})
        assert type(error) is ValueError
        assert str(error) == (
            "Expected dictionary output from node r. Instead, got <class 'str'> from 'end'."
        )
        assert items == ["<graphai:END:>"]


class TestSyncNodeFunctions:
    """A node function defined with `def` decorates fine but raises `TypeError` at execute,
    naming the node; the stream still ends."""

    def test_decorating_a_sync_function_is_allowed(self):
        def s():
            return {}

        assert node(s, start=True).name == "s"

    async def test_sync_node(self):
        @node(start=True, end=True)
        def s():
            return {}

        inp = {"k": [1]}
        result, error, items = await run_with_consumer(Graph().add_node(s), inp)
        assert result is None
        assert type(error) is TypeError
        assert "'s'" in str(error)
        assert items == ["<graphai:END:>"]
        assert inp == {"k": [1]}

    async def test_sync_node_named(self):
        @node(start=True)
        async def first():
            return {}

        @node(end=True, name="custom_name")
        def second():
            return {}

        g = Graph().add_node(first).add_node(second).add_edge(first, second)
        _, error, _ = await run_with_consumer(g, {})
        assert type(error) is TypeError
        assert "custom_name" in str(error)

    async def test_sync_stream_node_keeps_markers_balanced(self):
        @node(start=True, end=True, stream=True)
        def syncstream(callback):
            callback("sent")
            return {}

        _, error, items = await run_with_consumer(Graph().add_node(syncstream), {})
        assert type(error) is TypeError
        assert "syncstream" in str(error)
        assert items == [
            "<graphai:syncstream:start:>",
            "<graphai:syncstream:>",
            "sent",
            "<graphai:syncstream:end:>",
            "<graphai:END:>",
        ]

    async def test_sync_router(self):
        @router(start=True)
        def pick():
            return {"choice": "end"}

        @node(end=True)
        async def end():
            return {}

        g = Graph().add_node(pick).add_node(end).add_edge(pick, end)
        _, error, items = await run_with_consumer(g, {})
        assert type(error) is TypeError
        assert "pick" in str(error)
        assert items == ["<graphai:END:>"]
