"""
``EventCallback`` and ``GraphEvent`` of graphai-lib 0.0.12 (section 7 check 39, section 3.3):
the event sequence of a graph run, identifiers, SSE ``encode()``, ``GraphEventType`` values.
"""

import asyncio

import pytest

from graphai import EventCallback, Graph, GraphEvent, GraphEventType, node
from tests._stream import TIMEOUT, drain
from tests.compat._support import execute_streamed


class TestEventCallback:
    """`EventCallback` yields `GraphEvent`s; SSE `encode()`; upstream enum values (check 39)."""

    async def test_event_sequence_in_a_graph(self):
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
        assert type(cb) is EventCallback
        _, events = await execute_streamed(g, {}, cb)
        assert all(isinstance(e, GraphEvent) for e in events)
        assert [(e.type, e.token, e.params) for e in events] == [
            (GraphEventType.START_NODE, "llm", None),
            (GraphEventType.CALLBACK, "Hello", None),
            ("tool_call", "tool", {"q": "x"}),
            (GraphEventType.END_NODE, "llm", None),
            (GraphEventType.END, None, None),
        ]
        assert {e.identifier for e in events} == {"graphai"}

    async def test_identifier_on_node_events(self):
        cb = EventCallback(identifier="session-1")
        await cb.start_node("n")
        await cb.end_node("n")
        await cb.close()
        events = await asyncio.wait_for(drain(cb), TIMEOUT)
        assert events == [
            GraphEvent(GraphEventType.START_NODE, "session-1", "n"),
            GraphEvent(GraphEventType.END_NODE, "session-1", "n"),
            GraphEvent(GraphEventType.END, "session-1"),
        ]

    def test_encode(self):
        ev = GraphEvent(
            type=GraphEventType.CALLBACK, identifier="graphai", token="héllo", params={"a": 1}
        )
        assert ev.encode() == (
            b'data: {"type":"callback","identifier":"graphai","token":"h\xc3\xa9llo","params":{"a":1}}\n\n'
        )
        custom = GraphEvent(type="tool_call", identifier="i")
        assert custom.encode() == (
            b'data: {"type":"tool_call","identifier":"i","token":null,"params":null}\n\n'
        )

    def test_event_type_values(self):
        assert [t.value for t in GraphEventType] == [
            "start",
            "end",
            "start_node",
            "end_node",
            "callback",
        ]
        assert str(GraphEventType.END) == "end"
        assert (GraphEventType.END == "end") is False

    async def test_closed_stream_errors(self):
        cb = EventCallback()
        await cb.close()
        await cb.close()
        with pytest.raises(RuntimeError) as ei:
            await cb.acall("x")
        assert str(ei.value) == "Cannot add tokens to a closed stream"
        with pytest.raises(RuntimeError) as ei:
            await cb.start_node("n")
        assert str(ei.value) == "Cannot start node on a closed stream"
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == [
            GraphEvent(GraphEventType.END, "graphai")
        ]

    async def test_build_special_token_not_implemented(self):
        with pytest.raises(NotImplementedError):
            await EventCallback()._build_special_token("x")
