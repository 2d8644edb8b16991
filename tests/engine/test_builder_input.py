"""Wrong input to the graph builder: a non-node, a duplicate or a second start node, a name not
in the graph; each raises at once with a clear message (naming the method, the argument or the
node and the bad value's type) and leaves the graph unchanged."""

import asyncio
import copy

import pytest

from graphai import (
    Callback,
    Graph,
    GraphError,
    NodeNotFoundError,
    node,
    router,
)
from tests._stream import TIMEOUT, run_with_consumer
from tests.engine._support import base_graph, snapshot


class TestBuilderTypeErrors:
    """Non-node objects given to the builder raise `TypeError` naming the method/argument and
    the bad value's type; the graph is unchanged."""

    @pytest.mark.parametrize("bad", [123, None, "a", object()])
    def test_add_node_rejects_non_nodes(self, bad):
        g, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_node(bad)
        msg = str(ei.value)
        assert "add_node()" in msg
        assert type(bad).__name__ in msg
        assert snapshot(g) == before

    def test_add_edge_destination_int(self):
        g, a, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_edge(a, 123)
        msg = str(ei.value)
        assert "destination" in msg
        assert "int" in msg and "123" in msg
        assert snapshot(g) == before

    def test_add_edge_source_int(self):
        g, a, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_edge(123, a)
        msg = str(ei.value)
        assert "source" in msg
        assert "int" in msg and "123" in msg
        assert snapshot(g) == before

    @pytest.mark.parametrize("bad", [None, 1.5, ["a"], b"a"])
    def test_add_edge_other_non_nodes(self, bad):
        g, a, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_edge(a, bad)
        assert "destination" in str(ei.value)
        assert type(bad).__name__ in str(ei.value)
        assert snapshot(g) == before

    async def test_graph_still_runs_after_failed_add_edge(self):
        g, a, *_ = base_graph()
        with pytest.raises(TypeError):
            g.add_edge(a, 123)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"a": 1, "b": 1, "end": 1}

    def test_add_join_bad_source(self):
        g, _, b, end, _ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_join([b, 123], end)
        assert "source" in str(ei.value) and "123" in str(ei.value)
        assert snapshot(g) == before

    def test_add_join_sources_not_a_list(self):
        g, _, _, end, _ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_join("b", end)
        assert "sources" in str(ei.value)
        assert snapshot(g) == before

    def test_add_branch_bad_destination_and_condition(self):
        g, a, b, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_branch(a, 123)
        assert "destination" in str(ei.value)
        with pytest.raises(TypeError) as ei:
            g.add_branch(a, b, condition="yes")
        assert "condition" in str(ei.value)
        assert snapshot(g) == before

    def test_add_router_with_non_router(self):
        g, a, b, end, _ = base_graph()
        before = snapshot(g)
        for bad in (123, b):
            with pytest.raises(TypeError) as ei:
                g.add_router(sources=[a], router=bad, destinations=[end])
            assert str(ei.value) == "A router object must be passed to the router parameter."
        assert snapshot(g) == before

    def test_add_parallel_bad_destination_leaves_graph_unchanged(self):
        g, a, _, end, _ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            g.add_parallel(a, [end, 123])
        assert "destination" in str(ei.value)
        assert snapshot(g) == before

    @pytest.mark.parametrize("method", ["set_start_node", "set_end_node"])
    def test_set_start_end_node_reject_non_nodes(self, method):
        g, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(TypeError) as ei:
            getattr(g, method)(123)
        assert method in str(ei.value)
        assert "int" in str(ei.value)
        assert snapshot(g) == before
        assert not hasattr(g, "end_node")

    def test_set_callback_requires_a_class(self):
        g, *_ = base_graph()
        with pytest.raises(TypeError) as ei:
            g.set_callback(Callback())
        assert "set_callback()" in str(ei.value)
        assert g.Callback is Callback

    @pytest.mark.parametrize(
        ("kwargs", "arg"),
        [({"max_steps": "10"}, "max_steps"), ({"initial_state": [1]}, "initial_state")],
    )
    def test_graph_constructor_types(self, kwargs, arg):
        with pytest.raises(TypeError) as ei:
            Graph(**kwargs)
        assert arg in str(ei.value)

    @pytest.mark.parametrize("method", ["set_state", "update_state"])
    def test_state_setters_require_dicts(self, method):
        g = Graph(initial_state={"k": 1})
        st = g.get_state()
        with pytest.raises(TypeError) as ei:
            getattr(g, method)([("k", 2)])
        assert method in str(ei.value)
        assert g.get_state() is st
        assert st == {"k": 1}

    def test_node_decorator_rejects_non_callables(self):
        with pytest.raises(ValueError) as ei:
            node(123)
        assert str(ei.value) == "Node must be a callable function."


class TestDuplicateNodes:
    """Duplicate names and second start nodes raise upstream's `GraphError` messages without
    registering the rejected node."""

    def test_duplicate_name(self):
        g, a, *_ = base_graph()
        before = snapshot(g)
        with pytest.raises(GraphError) as ei:
            g.add_node(a)
        assert str(ei.value) == "Node with name 'a' already exists."
        assert snapshot(g) == before

    def test_second_start_node_is_not_registered(self):
        g, *_ = base_graph()

        @node(start=True)
        async def other():
            return {}

        before = snapshot(g)
        with pytest.raises(GraphError) as ei:
            g.add_node(other)
        assert str(ei.value) == (
            "Multiple start nodes are not allowed. Start node 'a' already exists, so new start "
            "node 'other' can not be added to the graph."
        )
        assert snapshot(g) == before
        assert "other" not in g.nodes


class TestUnknownNodes:
    """Names of nodes that are not in the graph raise `NodeNotFoundError` (a `ValueError` and a
    `GraphError`) with upstream's message; the graph is unchanged."""

    NOT_FOUND = "Node with name 'nope' not found."

    @pytest.mark.parametrize(
        "call",
        [
            lambda g, a, end: g.add_edge(a, "nope"),
            lambda g, a, end: g.add_edge("nope", a),
            lambda g, a, end: g.add_branch(a, "nope"),
            lambda g, a, end: g.add_branch("nope", a),
            lambda g, a, end: g.add_join(["nope"], end),
            lambda g, a, end: g.add_join([a], "nope"),
            lambda g, a, end: g.add_parallel(a, ["nope"]),
        ],
        ids=[
            "edge-dst",
            "edge-src",
            "branch-dst",
            "branch-src",
            "join-src",
            "join-dst",
            "parallel",
        ],
    )
    def test_unknown_name(self, call):
        g, a, _, end, _ = base_graph()
        before = snapshot(g)
        with pytest.raises(ValueError) as ei:
            call(g, a, end)
        assert type(ei.value) is NodeNotFoundError
        assert isinstance(ei.value, GraphError)
        assert str(ei.value) == self.NOT_FOUND
        assert snapshot(g) == before

    def test_node_object_not_in_graph(self):
        g, a, *_ = base_graph()

        @node
        async def orphan():
            return {}

        before = snapshot(g)
        with pytest.raises(NodeNotFoundError) as ei:
            g.add_edge(a, orphan)
        msg = str(ei.value)
        assert msg.startswith("Node with name '") and msg.endswith("' not found.")
        assert snapshot(g) == before

    def test_add_parallel_unknown_second_destination_leaves_graph_unchanged(self):
        g, a, _, end, _ = base_graph()
        before = snapshot(g)
        with pytest.raises(NodeNotFoundError) as ei:
            g.add_parallel(a, [end, "nope"])
        assert str(ei.value) == self.NOT_FOUND
        assert snapshot(g) == before

    def test_add_router_unknown_destination_leaves_graph_unchanged(self):
        g, a, _, end, r = base_graph()
        before = snapshot(g)
        with pytest.raises(NodeNotFoundError) as ei:
            g.add_router(sources=[a], router=r, destinations=[end, "nope"])
        assert str(ei.value) == self.NOT_FOUND
        assert snapshot(g) == before

    @pytest.mark.parametrize("output", [{"choice": "nope"}, {"choices": ["end", "nope"]}])
    async def test_router_choosing_an_unknown_node(self, output):
        @router(start=True, stream=True)
        async def pick(callback):
            await callback.acall("thinking")
            return dict(output)

        @node(end=True)
        async def end():
            return {}

        g = Graph().add_node(pick).add_node(end).add_edge(pick, end)
        inp = {"q": [1]}
        before = copy.deepcopy(inp)
        result, error, items = await run_with_consumer(g, inp)
        assert result is None
        assert type(error) is NodeNotFoundError
        assert str(error) == "Node with name nope not found."
        assert items == [
            "<graphai:pick:start:>",
            "<graphai:pick:>",
            "thinking",
            "<graphai:pick:end:>",
            "<graphai:END:>",
        ]
        assert inp == before
