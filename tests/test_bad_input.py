"""
Wrong input to the builder, the Callback and ``execute``: every mistake raises at once with a
clear message (naming the argument, node or placeholder), nothing hangs (every wait is bounded)
and nothing is left half-done (the graph is unchanged after a failed builder call, the caller's
input dict is unchanged after a failed run, a consumer of the stream still sees END).
"""

import asyncio
import copy

import pytest

from graphai import (
    Callback,
    EventCallback,
    Graph,
    GraphError,
    NodeNotFoundError,
    node,
    router,
)
from tests._stream import TIMEOUT, drain, run_with_consumer


def snapshot(g):
    """The observable structure of a graph."""
    return (
        dict(g.nodes),
        [
            (
                type(e).__name__,
                getattr(e, "source", None),
                tuple(getattr(e, "sources", ())),
                e.destination,
            )
            for e in g.edges
        ],
        g.start_node,
        list(g.end_nodes),
        set(g.join_nodes),
        g.Callback,
        g.state,
    )


def base_graph():
    @node(start=True)
    async def a():
        return {"a": 1}

    @node
    async def b():
        return {"b": 1}

    @node(end=True)
    async def end():
        return {"end": 1}

    @router
    async def r():
        return {"choice": "end"}

    g = Graph().add_node(a).add_node(b).add_node(end).add_node(r)
    g.add_edge(a, b).add_edge(b, end)
    return g, a, b, end, r


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


class TestBadSpecialTokenFormat:
    """A format with an unknown placeholder, a malformed format or a non-string format fails
    when the Callback is constructed (not later, at `close()` or `aiter()`), naming the
    argument and the placeholder."""

    @pytest.mark.parametrize(
        ("fmt", "placeholder"),
        [
            ("<{foo}>", "{foo}"),
            ("<{identifier}:{token}:{params}:{extra}>", "{extra}"),
            ("<{name}:{token}>", "{name}"),
            ("<{}>", "{}"),
        ],
    )
    def test_unknown_placeholder(self, fmt, placeholder):
        with pytest.raises(ValueError) as ei:
            Callback(special_token_format=fmt)
        msg = str(ei.value)
        assert "special_token_format" in msg
        assert placeholder in msg

    def test_unknown_placeholder_in_token_format(self):
        with pytest.raises(ValueError) as ei:
            Callback(token_format="TOKEN: {tok}")
        msg = str(ei.value)
        assert "token_format" in msg
        assert "{tok}" in msg

    @pytest.mark.parametrize("fmt", ["<{identifier", "<{token}}>x{"])
    def test_malformed_format(self, fmt):
        with pytest.raises(ValueError) as ei:
            Callback(special_token_format=fmt)
        assert "special_token_format" in str(ei.value)

    @pytest.mark.parametrize("fmt", [None, 123])
    def test_non_string_format(self, fmt):
        with pytest.raises(TypeError) as ei:
            Callback(special_token_format=fmt)
        assert "special_token_format" in str(ei.value)

    async def test_valid_formats_still_work(self):
        cb = Callback(special_token_format="{token}", token_format="[{token}]")
        await cb.acall("x")
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == ["[x]", "END"]

    def test_event_callback_ignores_formats(self):
        cb = EventCallback(special_token_format="<{foo}>", token_format="{bar}")
        assert cb.identifier == "graphai"


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
