"""
Building a graph as graphai-lib 0.0.12 does (section 7 checks 11-14, 17, section 2.2): the
builder methods, their errors and messages, the public attributes, ``execute`` without
``compile()``, ``set_start_node``, ``visualize`` without matplotlib, ``get_callback()``.
"""

import asyncio

import pytest

from graphai import Callback, Graph, GraphError, NodeNotFoundError, node, router
from tests._stream import TIMEOUT
from tests.compat._support import _nodes


class TestBuilder:
    """Builder errors use upstream's messages; builder calls return the graph (checks 11-14, 17)."""

    def test_duplicate_node_name(self):
        a, *_ = _nodes()
        g = Graph().add_node(a)
        with pytest.raises(GraphError) as ei:
            g.add_node(a)
        assert str(ei.value) == "Node with name 'a' already exists."

    def test_second_start_node(self):
        @node(start=True)
        async def a():
            return {}

        @node(start=True)
        async def b():
            return {}

        g = Graph().add_node(a)
        with pytest.raises(GraphError) as ei:
            g.add_node(b)
        assert str(ei.value) == (
            "Multiple start nodes are not allowed. Start node 'a' already exists, so new start "
            "node 'b' can not be added to the graph."
        )

    def test_add_edge_unknown_name(self):
        a, *_ = _nodes()
        g = Graph().add_node(a)
        with pytest.raises(ValueError) as ei:
            g.add_edge(a, "nope")
        assert type(ei.value) is NodeNotFoundError
        assert isinstance(ei.value, GraphError)
        assert str(ei.value) == "Node with name 'nope' not found."

    def test_add_router_with_non_router(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end)
        with pytest.raises(TypeError) as ei:
            g.add_router(sources=[a], router=b, destinations=[end])
        assert str(ei.value) == "A router object must be passed to the router parameter."

    def test_add_router_adds_edges_both_ways(self):
        a, _, _, end = _nodes()

        @router
        async def r():
            return {"choice": "end"}

        g = Graph().add_node(a).add_node(r).add_node(end)
        g.add_router(sources=[a], router=r, destinations=[end])
        assert [(e.source.name, e.destination.name) for e in g.edges] == [("a", "r"), ("r", "end")]

    def test_edges_accept_names(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end)
        g.add_edge("a", "b").add_edge(b, "end")
        assert [(e.source.name, e.destination.name) for e in g.edges] == [("a", "b"), ("b", "end")]

    def test_builder_methods_return_the_graph(self):
        a, b, c, end = _nodes()

        @router
        async def r():
            return {"choice": "end"}

        g = Graph()
        assert g.add_node(a) is g
        for n in (b, c, r, end):
            g.add_node(n)
        assert g.add_edge(a, r) is g
        assert g.add_router(sources=[a], router=r, destinations=[b]) is g
        assert g.add_parallel(b, [c, end]) is g
        assert g.add_join([c, end], b) is g
        assert g.add_branch(a, c) is g
        assert g.set_start_node(a) is g
        assert g.set_end_node(end) is g
        assert g.set_state({}) is g
        assert g.update_state({"x": 1}) is g
        assert g.reset_state() is g
        assert g.set_callback(Callback) is g
        assert g.compile() is g

    def test_public_attributes(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, b).add_edge(b, end)
        assert g.nodes == {"a": a, "b": b, "end": end}
        assert g.start_node is a
        assert g.end_nodes == [end]
        assert g.join_nodes == set()
        assert g.Callback is Callback
        assert g.max_steps == 10
        assert g.state == {}
        assert g.branch_errors == []
        assert [(e.source, e.destination) for e in g.edges] == [(a, b), (b, end)]

    def test_add_join_records_join_nodes(self):
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(c).add_node(end)
        g.add_join([b, c], end)
        assert g.join_nodes == {b, c}
        (edge,) = g.edges
        assert (edge.sources, edge.destination) == ([b, c], end)

    async def test_execute_without_compile(self):
        a, _, _, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_edge(a, end)
        assert await g.execute({"x": 1}) == {"x": 1}

    async def test_execute_without_start_node(self):
        _, b, _, end = _nodes()
        g = Graph().add_node(b).add_node(end).add_edge(b, end)
        with pytest.raises(AssertionError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == "Graph must be compiled before execution"

    async def test_set_start_node_overrides(self):
        _, b, _, end = _nodes()
        g = Graph().add_node(b).add_node(end).add_edge(b, end).set_start_node(b)
        assert g.start_node is b
        assert await g.execute({"k": 1}) == {"k": 1}

    def test_visualize_without_matplotlib(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("matplotlib is installed; the [viz] extra is exercised elsewhere")
        a, _, _, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_edge(a, end)
        with pytest.raises(ImportError) as ei:
            g.visualize()
        assert str(ei.value).startswith("Graph visualization requires matplotlib. Install it with:")


class TestGetCallback:
    """`get_callback()` returns a new instance of the graph's callback class each call."""

    def test_new_instance_each_time(self):
        g = Graph()
        a, b = g.get_callback(), g.get_callback()
        assert type(a) is Callback and type(b) is Callback
        assert a is not b
