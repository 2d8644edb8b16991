"""
Compatibility with graphai-lib 0.0.12: the behavioural acceptance checks of
``reference/upstream-graphai.md`` section 7 (and the details of sections 2 and 3) that
``spec/ENGINE.md`` keeps, with upstream's exact values and messages.

Section 7 "Quirk" checks that ENGINE.md fixes (caller input mutated, join edges ignored by
``compile()``, ``token_format`` ignored, the callback left open) are asserted here as the fixed
behaviour; ``tests/test_fixes.py`` has the tests that prove each fix differs from upstream.
"""

import asyncio
import copy
import itertools
import time

import pytest

from graphai import (
    BranchError,
    Callback,
    EventCallback,
    Graph,
    GraphCompileError,
    GraphError,
    GraphEvent,
    GraphEventType,
    MaxStepsError,
    NodeNotFoundError,
    NoOutgoingEdgeError,
    StreamClosedError,
    node,
    router,
)
from graphai.callback import CallbackProtocol
from tests._stream import TIMEOUT, drain, run_with_consumer

MAX_STEPS_MSG = (
    "Max steps reached: {}. You can modify this by setting `max_steps` when initializing the "
    "Graph object."
)


async def execute_streamed(graph, inp, cb=None):
    result, error, items = await run_with_consumer(graph, inp, cb)
    if error is not None:
        raise error
    return result, items


def single(fn, **flags):
    """A graph of one start+end node built from ``fn``."""
    n = node(fn, start=True, end=True, **flags)
    return Graph().add_node(n), n


# ---------------------------------------------------------------------------------------------
# Nodes and data flow (section 7, checks 1-10; section 2.1)
# ---------------------------------------------------------------------------------------------


class TestNodeDecorators:
    """`node`/`router` work bare, called and functionally, and return a node class carrying
    `name`, `is_start`, `is_end`, `is_router`, `stream`, `schema`, `invoke` (check 1)."""

    def test_bare_decorator_uses_function_name_and_default_flags(self):
        @node
        async def f(x: int):
            """Doc of f."""
            return {}

        assert isinstance(f, type)
        assert (f.name, f.is_start, f.is_end, f.is_router, f.stream) == (
            "f",
            False,
            False,
            False,
            False,
        )
        assert f.__name__ == "f"
        assert f.__doc__ == "Doc of f."

    def test_called_decorator_with_flags(self):
        @node()
        async def g():
            return {}

        @node(start=True, end=True, stream=True)
        async def h():
            return {}

        assert (g.name, g.is_start, g.is_end, g.stream) == ("g", False, False, False)
        assert (h.name, h.is_start, h.is_end, h.stream) == ("h", True, True, True)

    def test_name_argument_overrides_name_but_not_dunder_name(self):
        @node(name="x")
        async def f():
            return {}

        assert f.name == "x"
        assert f.__name__ == "f"

    def test_functional_form(self):
        async def f():
            return {}

        n = node(f, end=True)
        assert (n.name, n.is_end, n.is_start, n.is_router) == ("f", True, False, False)

    def test_router_decorator_sets_is_router(self):
        @router
        async def r():
            return {"choice": "a"}

        @router(end=True, name="rr")
        async def r2():
            return {"choice": "a"}

        assert r.is_router is True
        assert (r2.is_router, r2.is_end, r2.name) == (True, True, "rr")

    def test_instance_carries_the_class_attributes(self):
        @node(start=True, stream=True)
        async def f():
            return {}

        inst = f()
        assert (inst.name, inst.is_start, inst.is_end, inst.is_router, inst.stream) == (
            "f",
            True,
            False,
            False,
            True,
        )

    def test_non_callable_raises_value_error(self):
        with pytest.raises(ValueError) as ei:
            node(123)
        assert str(ei.value) == "Node must be a callable function."

    def test_get_signature_text(self):
        @node
        async def f(x: int, y: str = "d"):
            return {}

        assert f.get_signature() == "x: <class 'int'>\ny: <class 'str'> = d"

    def test_schema_is_built_at_decoration(self):
        @node
        async def f(x: int, y: str = "d"):
            """Describe f."""
            return {}

        assert f.schema.name == "f"
        assert f.schema.description == "Describe f."

    async def test_invoke_runs_the_function_with_filtered_arguments(self):
        @node
        async def f(x: int, y: int = 2):
            return {"sum": x + y}

        assert await f.invoke({"x": 1, "other": 0}) == {"sum": 3}
        assert await f().invoke({"x": 1, "y": 5}) == {"sum": 6}

    async def test_invoke_with_callback_on_non_stream_node_raises(self):
        @node
        async def f():
            return {}

        with pytest.raises(ValueError) as ei:
            await f.invoke({}, callback=Callback())
        assert str(ei.value) == "Error in node f. When callback provided, stream must be True."


class TestDataFlow:
    """Arguments are filtered by signature with defaults; outputs merge into the payload that
    flows on; later keys win; the result is a new dict (checks 2-8)."""

    async def test_linear_graph_appends_letters(self):
        @node(start=True)
        async def start(input: str):
            return {"input": input + "D"}

        @node
        async def a(input: str):
            return {"input": input + "E"}

        @node
        async def b(input: str):
            return {"input": input + "F"}

        @node(end=True)
        async def end(input: str):
            return {"input": input + "G"}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_edge(start, a).add_edge(a, b).add_edge(b, end)
        assert await g.execute({"input": "ABC"}) == {"input": "ABCDEFG"}

    async def test_arguments_filtered_and_defaults_applied(self):
        seen = []

        async def f(query: str, k: int = 3):
            seen.append({"query": query, "k": k})
            return {"answer": query * k}

        g, _ = single(f)
        result = await g.execute({"query": "q", "zzz": 1})
        assert seen == [{"query": "q", "k": 3}]
        assert result == {"query": "q", "zzz": 1, "answer": "qqq"}

    async def test_missing_required_parameter(self):
        async def f(query: str):
            return {}

        g, _ = single(f)
        with pytest.raises(ValueError) as ei:
            await g.execute({"other": 1})
        assert str(ei.value) == "Missing required parameters for the f node: query"

    async def test_all_missing_parameters_are_listed(self):
        """Upstream lists them in set order (varies with hash randomisation), so only the
        set of names is compared."""

        async def f(a: int, b: int, c: int = 0):
            return {}

        g, _ = single(f)
        with pytest.raises(ValueError) as ei:
            await g.execute({})
        prefix = "Missing required parameters for the f node: "
        msg = str(ei.value)
        assert msg.startswith(prefix)
        assert sorted(msg[len(prefix) :].split(", ")) == ["a", "b"]

    async def test_input_parameter_receives_only_the_input_key(self):
        seen = []

        async def f(input: dict):
            seen.append(input)
            return {}

        g, _ = single(f)
        await g.execute({"input": {"q": 1}, "other": 2})
        assert seen == [{"q": 1}]

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (
                "abc",
                "Expected dictionary output from node a. Instead, got <class 'str'> from 'abc'.",
            ),
            (
                None,
                "Expected dictionary output from node a. Instead, got <class 'NoneType'> from 'None'.",
            ),
        ],
    )
    async def test_non_dict_output(self, value, expected):
        async def a():
            return value

        g, _ = single(a)
        with pytest.raises(ValueError) as ei:
            await g.execute({})
        assert str(ei.value) == expected

    async def test_sync_node_raises_type_error_at_execute(self):
        def s():
            return {}

        g, _ = single(s)
        with pytest.raises(TypeError):
            await g.execute({})

    async def test_outputs_merge_later_keys_win(self):
        @node(start=True)
        async def start(q: str):
            return {"x": 1, "q": q + "1"}

        @node(end=True)
        async def end(x: int):
            return {"x": x + 1}

        g = Graph().add_node(start).add_node(end).add_edge(start, end)
        inp = {"q": "z", "extra": [1]}
        result = await g.execute(inp)
        assert result == {"q": "z1", "extra": [1], "x": 2}
        assert result is not inp
        assert inp == {"q": "z", "extra": [1]}

    async def test_upstream_parameter_and_absent_from_result(self):
        seen = []

        @node(start=True)
        async def first():
            return {"v": 1}

        @node(end=True)
        async def second(upstream: dict):
            seen.append(upstream)
            return {"w": 2}

        g = Graph().add_node(first).add_node(second).add_edge(first, second)
        result = await g.execute({"i": 0})
        assert seen == [{"node": "first", "output": {"v": 1}}]
        assert result == {"i": 0, "v": 1, "w": 2}

    async def test_start_node_has_no_upstream(self):
        async def f(upstream: dict):
            return {}

        g, _ = single(f)
        with pytest.raises(ValueError) as ei:
            await g.execute({})
        assert str(ei.value) == "Missing required parameters for the f node: upstream"

    async def test_callback_parameter_without_stream(self):
        async def a(callback=None):
            return {}

        g, _ = single(a)
        with pytest.raises(ValueError) as ei:
            await g.execute({})
        assert str(ei.value) == "Node a: requires stream=True when callback is defined."

    async def test_state_parameter_receives_the_graph_state(self):
        seen = []

        async def f(state: dict):
            seen.append(state)
            state["count"] = state.get("count", 0) + 1
            return {"ok": True}

        g, _ = single(f)
        g.set_state({"count": 0})
        st = g.get_state()
        await g.execute({})
        await g.execute({})
        assert seen[0] is st and seen[1] is st
        assert g.get_state() == {"count": 2}

    async def test_stream_start_node_with_state_does_not_touch_caller_input(self):
        """Check 10, fixed (ENGINE.md fix 4): no `callback`/`state` added to the caller's
        dict, and neither key (nor `upstream`) in the result."""

        @node(start=True, end=True, stream=True)
        async def s(state: dict, callback):
            await callback.acall("t")
            return {"out": 1}

        g = Graph(initial_state={"k": "v"}).add_node(s)
        inp = {"q": 1}
        result, items = await execute_streamed(g, inp)
        assert inp == {"q": 1}
        assert result == {"q": 1, "out": 1}
        assert items == [
            "<graphai:s:start:>",
            "<graphai:s:>",
            "t",
            "<graphai:s:end:>",
            "<graphai:END:>",
        ]


# ---------------------------------------------------------------------------------------------
# Graph building and compile (checks 11-18; section 2.2, 2.4)
# ---------------------------------------------------------------------------------------------


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


class TestBuilder:
    """Builder errors carry upstream's messages; every builder method returns the graph
    (checks 11-14, 17)."""

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


class TestState:
    """The graph state API (section 2.2): live object, replace, update, reset; the identity of
    a non-empty ``initial_state`` is kept."""

    def test_state_api(self):
        d = {"a": 1}
        g = Graph(initial_state=d)
        assert g.get_state() is d
        g.update_state({"b": 2})
        assert d == {"a": 1, "b": 2}
        new = {"z": 0}
        g.set_state(new)
        assert g.get_state() is new
        g.reset_state()
        assert g.get_state() == {}
        assert g.get_state() is not new

    def test_empty_initial_state_is_replaced(self):
        d: dict = {}
        g = Graph(initial_state=d)
        assert g.get_state() == {}
        assert g.get_state() is not d


class TestCompile:
    """`compile()` validation errors and strict cycle checks (checks 15, 16, 18, 28)."""

    def test_empty_graph(self):
        with pytest.raises(GraphCompileError) as ei:
            Graph().compile()
        assert str(ei.value) == "No nodes have been added to the graph"
        assert isinstance(ei.value, GraphError)

    def test_no_start(self):
        _, b, _, end = _nodes()
        g = Graph().add_node(b).add_node(end).add_edge(b, end)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "No start node defined"

    def test_no_end(self):
        a, b, _, _ = _nodes()
        g = Graph().add_node(a).add_node(b).add_edge(a, b)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "No end node defined"

    def test_unreachable(self):
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(c).add_node(end)
        g.add_edge(a, b).add_edge(b, end)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "Unreachable nodes: ['c']"

    def test_unreachable_sorted(self):
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_node(c).add_node(b).add_edge(a, end)
        with pytest.raises(GraphCompileError) as ei:
            g.compile()
        assert str(ei.value) == "Unreachable nodes: ['b', 'c']"

    def test_cycle_allowed_by_default_rejected_in_strict(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end)
        g.add_edge(a, b).add_edge(b, a).add_edge(b, end)
        assert g.compile() is g
        with pytest.raises(GraphCompileError) as ei:
            g.compile(strict=True)
        assert str(ei.value) == "cycle detected in graph (strict mode)"

    def test_self_loop_rejected_in_strict(self):
        a, _, _, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_edge(a, a).add_edge(a, end)
        g.compile()
        with pytest.raises(GraphCompileError) as ei:
            g.compile(strict=True)
        assert str(ei.value) == "cycle detected in graph (strict mode)"

    def test_strict_is_keyword_only(self):
        a, _, _, end = _nodes()
        g = Graph().add_node(a).add_node(end).add_edge(a, end)
        with pytest.raises(TypeError):
            g.compile(True)

    def test_branch_only_nodes_are_reachable_even_strict(self):
        a, _, c, end = _nodes()
        g = Graph().add_node(a).add_node(c).add_node(end).add_edge(a, end).add_branch(a, c)
        assert g.compile(strict=True) is g

    def test_join_destination_counts_as_reachable(self):
        """Check 28, fixed (ENGINE.md fix 5)."""
        a, b, c, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(c).add_node(end)
        g.add_parallel(a, [b, c]).add_join([b, c], end)
        assert g.compile() is g

    async def test_dead_end_not_detected_by_compile_but_fails_at_run_time(self):
        a, b, _, end = _nodes()
        g = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, b).add_branch(a, end)
        assert g.compile() is g
        with pytest.raises(NoOutgoingEdgeError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert isinstance(ei.value, GraphError)
        assert str(ei.value) == "No outgoing edge found for current node 'b'."

    async def test_set_end_node_makes_the_node_terminal(self):
        """Check 18's `set_end_node` quirk, fixed with ENGINE.md fix 5: a node that
        `compile()` accepts as the end node also ends the run."""
        a, b, _, _ = _nodes()
        g = Graph().add_node(a).add_node(b).add_edge(a, b).set_end_node(b)
        assert g.compile() is g
        assert await asyncio.wait_for(g.execute({"x": 1}), TIMEOUT) == {"x": 1}


# ---------------------------------------------------------------------------------------------
# Routers and limits (checks 19-23; section 2.7)
# ---------------------------------------------------------------------------------------------


class TestRouters:
    """Routers pick the next node by `choice`; the choice key stays in the result; any node of
    the graph may be chosen; end nodes stop (checks 19-21)."""

    def _graph(self, choice):
        ran = []

        @node(start=True)
        async def start():
            ran.append("start")
            return {}

        @router
        async def r():
            ran.append("r")
            return choice

        @node(end=True)
        async def a():
            ran.append("a")
            return {"a": 1}

        @node(end=True)
        async def b():
            ran.append("b")
            return {"b": 1}

        @node(end=True)
        async def c():
            ran.append("c")
            return {"c": 1}

        g = Graph()
        for n in (start, r, a, b, c):
            g.add_node(n)
        g.add_edge(start, r).add_router(sources=[], router=r, destinations=[a, b])
        return g, ran

    async def test_router_runs_only_the_choice_and_keeps_choice_key(self):
        g, ran = self._graph({"choice": "b"})
        assert await g.execute({}) == {"choice": "b", "b": 1}
        assert ran == ["start", "r", "b"]

    async def test_choice_without_edge_is_followed(self):
        g, ran = self._graph({"choice": "c"})
        assert await g.execute({}) == {"choice": "c", "c": 1}
        assert ran == ["start", "r", "c"]

    async def test_unknown_choice(self):
        g, _ = self._graph({"choice": "nope"})
        with pytest.raises(NodeNotFoundError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == "Node with name nope not found."

    async def test_missing_choice_is_key_error(self):
        g, _ = self._graph({"other": 1})
        with pytest.raises(KeyError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ei.value.args == ("choice",)

    async def test_router_output_seen_downstream_has_no_choice(self):
        seen = []

        @node(start=True)
        async def s():
            return {}

        @router
        async def r():
            return {"choice": "e", "x": 1}

        @node(end=True)
        async def e(upstream: dict):
            seen.append(upstream)
            return {}

        g = Graph().add_node(s).add_node(r).add_node(e).add_edge(s, r).add_edge(r, e)
        assert await g.execute({}) == {"choice": "e", "x": 1}
        assert seen == [{"node": "r", "output": {"x": 1}}]

    async def test_end_node_stops_even_with_outgoing_edges(self):
        ran = []

        @node(start=True)
        async def s():
            ran.append("s")
            return {}

        @node(end=True)
        async def e():
            ran.append("e")
            return {}

        @node
        async def after():
            ran.append("after")
            return {}

        g = Graph().add_node(s).add_node(e).add_node(after).add_edge(s, e).add_edge(e, after)
        await g.execute({})
        assert ran == ["s", "e"]

    async def test_end_router_stops(self):
        ran = []

        @router(start=True, end=True)
        async def r():
            ran.append("r")
            return {"choice": "x"}

        @node
        async def x():
            ran.append("x")
            return {}

        g = Graph().add_node(r).add_node(x).add_edge(r, x)
        assert await g.execute({}) == {"choice": "x"}
        assert ran == ["r"]


def _chain(n, **graph_kwargs):
    ran = []

    async def step(i: int = 0):
        ran.append(i)
        return {"i": i + 1}

    g = Graph(**graph_kwargs)
    nodes = [node(step, name=f"n{k}", start=k == 0, end=k == n - 1) for k in range(n)]
    for nd in nodes:
        g.add_node(nd)
    for x, y in itertools.pairwise(nodes):
        g.add_edge(x, y)
    return g, ran


class TestMaxSteps:
    """`max_steps` accounting of 0.0.12: at most `max_steps` nodes on a linear path, router
    hops count, `MaxStepsError` carries `max_steps` and upstream's message (checks 22, 23)."""

    async def test_default_ten_node_chain_succeeds(self):
        g, ran = _chain(10)
        assert await g.execute({}) == {"i": 10}
        assert len(ran) == 10

    async def test_default_eleven_node_chain_fails(self):
        g, ran = _chain(11)
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert isinstance(ei.value, GraphError)
        assert ei.value.max_steps == 10
        assert str(ei.value) == MAX_STEPS_MSG.format(10)
        assert len(ran) == 10

    async def test_max_steps_three(self):
        g, _ = _chain(3, max_steps=3)
        assert await g.execute({}) == {"i": 3}
        g, ran = _chain(4, max_steps=3)
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ei.value.max_steps == 3
        assert str(ei.value) == MAX_STEPS_MSG.format(3)
        assert ran == [0, 1, 2]

    @pytest.mark.parametrize("max_steps", [0, 1])
    async def test_single_node_runs_with_tiny_max_steps(self, max_steps):
        g, _ = _chain(1, max_steps=max_steps)
        assert await g.execute({}) == {"i": 1}

    async def test_router_loop_counts_router_hops(self):
        calls = {"llm": 0, "tool": 0}

        @node(start=True)
        async def start():
            return {}

        @router
        async def llm():
            calls["llm"] += 1
            return {"choice": "tool"}

        @node
        async def tool():
            calls["tool"] += 1
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph(max_steps=5)
        for n in (start, llm, tool, end):
            g.add_node(n)
        g.add_edge(start, llm).add_router(sources=[tool], router=llm, destinations=[tool, end])
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == MAX_STEPS_MSG.format(5)
        assert calls == {"llm": 2, "tool": 2}

    async def test_parallel_layer_with_join_counts_a_step(self):
        calls = {"rt": 0, "a": 0, "b": 0}

        @node(start=True)
        async def start():
            return {}

        @router
        async def rt():
            calls["rt"] += 1
            return {"choices": ["a", "b"]}

        @node
        async def a():
            calls["a"] += 1
            return {}

        @node
        async def b():
            calls["b"] += 1
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph(max_steps=6)
        for n in (start, rt, a, b, end):
            g.add_node(n)
        g.add_edge(start, rt).add_router(sources=[], router=rt, destinations=[a, b, end])
        g.add_join([a, b], rt)
        with pytest.raises(MaxStepsError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == MAX_STEPS_MSG.format(6)
        assert calls == {"rt": 3, "a": 3, "b": 3}


# ---------------------------------------------------------------------------------------------
# Parallel, joins, branches (checks 24-30; sections 2.5, 2.6)
# ---------------------------------------------------------------------------------------------


class TestParallel:
    """Several regular edges fan out concurrently; joins run their destination once; merges
    follow successor-list order, not completion order (checks 24-27)."""

    async def test_fork_join_runs_concurrently_and_end_once(self):
        ends = []

        @node(start=True)
        async def start():
            return {}

        @node
        async def a():
            await asyncio.sleep(0.2)
            return {"a": 1}

        @node
        async def b():
            await asyncio.sleep(0.2)
            return {"b": 2}

        @node(end=True)
        async def end(a: int, b: int):
            ends.append((a, b))
            return {"sum": a + b}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_parallel(start, [a, b]).add_join([a, b], end)
        t0 = time.perf_counter()
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        elapsed = time.perf_counter() - t0
        assert elapsed < 0.35
        assert result == {"a": 1, "b": 2, "sum": 3}
        assert ends == [(1, 2)]

    async def test_fork_without_join_runs_shared_end_per_path(self):
        ends = []

        @node(start=True)
        async def start():
            return {}

        @node
        async def a():
            return {"a": 1}

        @node
        async def b():
            return {"b": 2}

        @node(end=True)
        async def end():
            ends.append("end")
            return {"e": len(ends)}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_parallel(start, [a, b]).add_edge(a, end).add_edge(b, end)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ends == ["end", "end"]
        assert result["a"] == 1 and result["b"] == 2
        assert set(result) == {"a", "b", "e"}

    @pytest.mark.parametrize(("order", "expected"), [(("a", "b"), "b"), (("b", "a"), "a")])
    async def test_merge_conflict_follows_edge_order(self, order, expected):
        @node(start=True)
        async def start():
            return {}

        @node(end=True)
        async def a():
            return {"k": "a"}

        @node(end=True)
        async def b():
            await asyncio.sleep(0.05)  # b completes last in both orders
            return {"k": "b"}

        g = Graph()
        for n in (start, a, b):
            g.add_node(n)
        for name in order:
            g.add_edge(start, name)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert result == {"k": expected}

    async def test_duplicate_edges_fork(self):
        ran = []

        @node(start=True)
        async def start():
            return {}

        @node(end=True)
        async def end():
            ran.append("end")
            return {}

        g = Graph().add_node(start).add_node(end).add_edge(start, end).add_edge(start, end)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {}
        assert ran == ["end", "end"]

    async def test_router_choices_with_duplicates_and_join_back(self):
        calls = {"router": 0, "a": 0, "b": 0}

        @node(start=True)
        async def start():
            return {}

        @router
        async def rt():
            calls["router"] += 1
            if calls["router"] == 1:
                return {"choices": ["a", "b", "a"]}
            return {"choice": "end"}

        @node
        async def a():
            calls["a"] += 1
            return {"a": calls["a"]}

        @node
        async def b():
            calls["b"] += 1
            return {"b": 1}

        @node(end=True)
        async def end():
            return {"done": True}

        g = Graph()
        for n in (start, rt, a, b, end):
            g.add_node(n)
        g.add_edge(start, rt).add_router(sources=[], router=rt, destinations=[a, b, end])
        g.add_join([a, b], rt)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert calls == {"router": 2, "a": 2, "b": 1}
        assert result["done"] is True
        assert result["choices"] == ["a", "b", "a"]
        assert result["choice"] == "end"

    async def test_nodes_with_edge_but_not_chosen_do_not_run(self):
        ran = []

        @router(start=True)
        async def rt():
            return {"choices": ["a", "b"]}

        def mk(name):
            async def f():
                ran.append(name)
                return {name: 1}

            return node(f, name=name, end=True)

        a, b, c = mk("a"), mk("b"), mk("c")
        g = Graph().add_node(rt).add_node(a).add_node(b).add_node(c)
        g.add_router(sources=[], router=rt, destinations=[a, b, c])
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert sorted(ran) == ["a", "b"]
        assert result == {"choices": ["a", "b"], "a": 1, "b": 1}

    async def test_exception_in_a_path_propagates(self):
        @node(start=True)
        async def start():
            return {}

        @node(end=True)
        async def a():
            raise RuntimeError("path failed")

        @node(end=True)
        async def b():
            return {}

        g = Graph().add_node(start).add_node(a).add_node(b).add_parallel(start, [a, b])
        with pytest.raises(RuntimeError) as ei:
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert str(ei.value) == "path failed"

    async def test_join_source_on_a_non_parallel_path_has_no_successor(self):
        @node(start=True)
        async def a():
            return {}

        @node
        async def b():
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, end)
        g.add_join([a, b], end)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {}
        g2 = Graph().add_node(a).add_node(b).add_node(end).add_edge(a, b).add_join([b], end)
        with pytest.raises(NoOutgoingEdgeError) as ei:
            await asyncio.wait_for(g2.execute({}), TIMEOUT)
        assert str(ei.value) == "No outgoing edge found for current node 'b'."


class TestBranches:
    """Branch edges run side pipelines whose results never enter the payload; failures are
    recorded in `branch_errors`, never raised (checks 29, 30)."""

    def _graph(self, side_fn, **branch_kwargs):
        @node(start=True)
        async def work():
            return {"w": 1}

        @node(end=True)
        async def done():
            return {"d": 1}

        side = node(side_fn, name=side_fn.__name__)
        g = Graph().add_node(work).add_node(done).add_node(side).add_edge(work, done)
        g.add_branch(work, side, **branch_kwargs)
        return g

    async def test_branch_runs_with_upstream_and_output_is_absent(self):
        seen = []

        async def side(upstream: dict, w: int):
            seen.append((upstream, w))
            return {"side_out": 1}

        g = self._graph(side)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert result == {"w": 1, "d": 1}
        assert seen == [({"node": "work", "output": {"w": 1}}, 1)]
        assert g.branch_errors == []

    async def test_branch_error_recorded(self):
        err = RuntimeError("x")

        async def explode():
            raise err

        g = self._graph(explode)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"w": 1, "d": 1}
        assert g.branch_errors == [BranchError("work", "explode", err)]

    async def test_branch_errors_reset_on_next_execute(self):
        calls = []

        async def explode():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("x")
            return {}

        g = self._graph(explode)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert len(g.branch_errors) == 1
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert g.branch_errors == []

    async def test_falsy_condition_skips(self):
        ran = []

        async def side():
            ran.append(1)
            return {}

        g = self._graph(side, condition=lambda output, state: output["w"] == 2)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ran == []

    async def test_async_condition_and_condition_error(self):
        ran = []

        async def side():
            ran.append(1)
            return {}

        async def cond(output, state):
            return output["w"] == 1

        g = self._graph(side, condition=cond)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ran == [1]

        boom = ValueError("cond")

        def bad(output, state):
            raise boom

        g = self._graph(side, condition=bad)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"w": 1, "d": 1}
        assert g.branch_errors == [BranchError("work", "side", boom)]
        assert ran == [1]

    async def test_detached_branch_finishes_before_execute_returns(self):
        finished = []

        async def side():
            await asyncio.sleep(0.05)
            finished.append(1)
            return {}

        g = self._graph(side, wait=False)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert finished == [1]

    async def test_pipeline_follows_edges_and_stops_on_success_false(self):
        ran = []

        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {}

        @node
        async def p1():
            ran.append("p1")
            return {"success": False}

        @node
        async def p2():
            ran.append("p2")
            return {}

        g = Graph().add_node(work).add_node(done).add_node(p1).add_node(p2)
        g.add_edge(work, done).add_branch(work, p1).add_edge(p1, p2)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert ran == ["p1"]
        assert g.branch_errors == []

    async def test_pipeline_max_steps_recorded(self):
        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {}

        @node
        async def p1():
            return {}

        @node
        async def p2():
            return {}

        g = Graph(max_steps=2).add_node(work).add_node(done).add_node(p1).add_node(p2)
        g.add_edge(work, done).add_branch(work, p1).add_edge(p1, p2).add_edge(p2, p1)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {}
        (be,) = g.branch_errors
        assert (be.source, be.destination) == ("work", "p1")
        assert isinstance(be.error, MaxStepsError)
        assert str(be.error) == (
            "Max steps reached in branch pipeline: 2. You can modify this by setting `max_steps` "
            "when initializing the Graph object."
        )


# ---------------------------------------------------------------------------------------------
# Callback / streaming (checks 31-39; section 3)
# ---------------------------------------------------------------------------------------------


class TestGraphStream:
    """The token stream a consumer reads from a graph run: exact markers, stream nodes only,
    END last (checks 31, 32, 37, 38)."""

    async def test_exact_stream_for_two_node_graph(self):
        @node(start=True)
        async def first(input: dict):
            return {"output": input["text"].upper()}

        @node(end=True, stream=True)
        async def second(output: str, callback):
            for t in ["Hel", "lo", " world"]:
                await callback.acall(t)
            return {"output": output}

        g = Graph().add_node(first).add_node(second).add_edge(first, second)
        result, items = await execute_streamed(g, {"input": {"text": "hi!"}})
        assert result == {"input": {"text": "hi!"}, "output": "HI!"}
        assert items == [
            "<graphai:second:start:>",
            "<graphai:second:>",
            "Hel",
            "lo",
            " world",
            "<graphai:second:end:>",
            "<graphai:END:>",
        ]

    async def test_two_streaming_nodes_async_and_sync_call(self):
        @node(start=True, stream=True)
        async def s1(callback):
            await callback.acall("a")
            return {}

        @node(end=True, stream=True)
        async def s2(callback):
            callback("b")
            return {}

        g = Graph().add_node(s1).add_node(s2).add_edge(s1, s2)
        _, items = await execute_streamed(g, {})
        assert items == [
            "<graphai:s1:start:>",
            "<graphai:s1:>",
            "a",
            "<graphai:s1:end:>",
            "<graphai:s2:start:>",
            "<graphai:s2:>",
            "b",
            "<graphai:s2:end:>",
            "<graphai:END:>",
        ]

    async def test_stream_node_without_callback_parameter_emits_markers(self):
        @node(start=True, end=True, stream=True)
        async def quiet():
            return {"q": 1}

        g = Graph().add_node(quiet)
        result, items = await execute_streamed(g, {})
        assert result == {"q": 1}
        assert items == [
            "<graphai:quiet:start:>",
            "<graphai:quiet:>",
            "<graphai:quiet:end:>",
            "<graphai:END:>",
        ]

    async def test_tokens_of_any_type_pass_through(self):
        payload = {"tool": "search"}

        @node(start=True, end=True, stream=True)
        async def s(callback):
            await callback.acall(payload)
            await callback.acall(42)
            return {}

        _, items = await execute_streamed(Graph().add_node(s), {})
        assert items[2] is payload
        assert items[3] == 42

    async def test_graph_without_streaming_node_streams_only_end(self):
        """Check 38, fixed (ENGINE.md fix 1)."""

        @node(start=True, end=True)
        async def plain():
            return {"p": 1}

        result, items = await execute_streamed(Graph().add_node(plain), {})
        assert result == {"p": 1}
        assert items == ["<graphai:END:>"]

    async def test_reusing_a_closed_callback(self):
        @node(start=True, end=True, stream=True)
        async def s(callback):
            await callback.acall("x")
            return {}

        g = Graph().add_node(s)
        cb = Callback()
        await execute_streamed(g, {}, cb)
        with pytest.raises(RuntimeError) as ei:
            await asyncio.wait_for(g.execute({}, callback=cb), TIMEOUT)
        assert isinstance(ei.value, StreamClosedError)
        assert str(ei.value) == "Cannot start node on a closed stream"

    async def test_default_callback_is_used_without_one(self):
        @node(start=True, end=True, stream=True)
        async def s(callback):
            await callback.acall("x")
            return {"done": True}

        g = Graph().add_node(s)
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"done": True}

    async def test_duck_typed_callback(self):
        calls = []

        class Recorder:
            async def start_node(self, node_name, active=True):
                calls.append(("start_node", node_name))

            async def end_node(self, node_name):
                calls.append(("end_node", node_name))

            async def acall(self, token, node_name=None):
                calls.append(("acall", token))

            async def close(self):
                calls.append(("close",))

        @node(start=True)
        async def plain():
            return {}

        @node(end=True, stream=True)
        async def s(callback):
            await callback.acall("tok")
            return {"ok": 1}

        g = Graph().add_node(plain).add_node(s).add_edge(plain, s)
        result = await asyncio.wait_for(g.execute({}, callback=Recorder()), TIMEOUT)
        assert result == {"ok": 1}
        assert calls == [("start_node", "s"), ("acall", "tok"), ("end_node", "s"), ("close",)]


class TestCallbackFormats:
    """Special-token formats: identifier, `{token}`, `{params}` (empty for graph markers, hence
    the trailing colon); formats may omit placeholders (check 33, section 3.1)."""

    async def _markers(self, cb):
        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("tok")
            return {}

        _, items = await execute_streamed(Graph().add_node(n), {}, cb)
        return items

    async def test_custom_identifier_and_brackets(self):
        cb = Callback(identifier="demo", special_token_format="[{identifier}:{token}:{params}]")
        assert await self._markers(cb) == [
            "[demo:n:start:]",
            "[demo:n:]",
            "tok",
            "[demo:n:end:]",
            "[demo:END:]",
        ]

    async def test_format_without_identifier_and_params(self):
        cb = Callback(special_token_format="<<{token}>>")
        assert await self._markers(cb) == ["<<n:start>>", "<<n>>", "tok", "<<n:end>>", "<<END>>"]

    async def test_pipe_format(self):
        cb = Callback(identifier="demo", special_token_format="[{identifier}|{token}|{params}]")
        assert await self._markers(cb) == [
            "[demo|n:start|]",
            "[demo|n|]",
            "tok",
            "[demo|n:end|]",
            "[demo|END|]",
        ]

    async def test_default_token_format_leaves_tokens_raw(self):
        assert await self._markers(Callback()) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "tok",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]

    async def test_token_format_is_applied(self):
        """Check 33's `token_format` quirk, fixed (ENGINE.md fix 3)."""
        cb = Callback(token_format="<<{token}>>")
        assert await self._markers(cb) == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "<<tok>>",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]

    async def test_params_render_as_key_value_list(self):
        cb = Callback()
        token = await cb._build_special_token("test", {"key": "value", "number": 42})
        assert token == "<graphai:test:key=value,number=42>"
        assert await cb._build_special_token("END") == "<graphai:END:>"

    @pytest.mark.parametrize("identifier", ["", None])
    async def test_empty_identifier_renders_empty(self, identifier):
        cb = Callback(identifier=identifier)
        await cb.close()
        assert await asyncio.wait_for(drain(cb), TIMEOUT) == ["<:END:>"]

    def test_constructor_stores_its_arguments(self):
        cb = Callback(identifier="x", special_token_format="<{token}>", token_format="T{token}")
        assert (cb.identifier, cb.special_token_format, cb.token_format) == (
            "x",
            "<{token}>",
            "T{token}",
        )
        d = Callback()
        assert (d.identifier, d.special_token_format, d.token_format) == (
            "graphai",
            "<{identifier}:{token}:{params}>",
            "{token}",
        )


class TestStandaloneCallback:
    """The Callback used directly: closed-stream errors, one END, second `aiter()` empty,
    node-name checks, inactive nodes (checks 34-36, section 3.1)."""

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


class TestEventCallback:
    """`EventCallback` yields `GraphEvent` objects; `encode()` frames them for SSE; the enum's
    values and `str()` match upstream (check 39, section 3.3)."""

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


class TestGetCallback:
    """`get_callback()` returns a new instance of the graph's callback class each call."""

    def test_new_instance_each_time(self):
        g = Graph()
        a, b = g.get_callback(), g.get_callback()
        assert type(a) is Callback and type(b) is Callback
        assert a is not b


class TestExecuteMany:
    """`execute_many` keeps input order, shares graph state, propagates the first failure
    (check 40)."""

    async def test_results_in_input_order_and_shared_state(self):
        async def f(i: int, state: dict):
            await asyncio.sleep(0.01 * (5 - i))
            state.setdefault("seen", []).append(i)
            return {"sq": i * i}

        g, _ = single(f)
        results = await asyncio.wait_for(
            g.execute_many([{"i": i} for i in range(5)], concurrency=2), TIMEOUT
        )
        assert results == [{"i": i, "sq": i * i} for i in range(5)]
        assert sorted(g.get_state()["seen"]) == [0, 1, 2, 3, 4]

    async def test_failure_propagates(self):
        async def f(i: int):
            if i == 3:
                raise RuntimeError("bad input 3")
            return {}

        g, _ = single(f)
        with pytest.raises(RuntimeError) as ei:
            await asyncio.wait_for(
                g.execute_many([{"i": i} for i in range(5)], concurrency=2), TIMEOUT
            )
        assert str(ei.value) == "bad input 3"


class TestInputIsolation:
    """Nodes receive the payload, not the caller's objects' containers: the caller's dict is
    never mutated (check 10 fixed)."""

    async def test_deep_input_unchanged(self):
        async def f(q: str, state: dict):
            return {"q": q + "!"}

        g, _ = single(f)
        inp = {"q": "a", "nested": {"k": [1]}}
        snapshot = copy.deepcopy(inp)
        result = await g.execute(inp)
        assert inp == snapshot
        assert result == {"q": "a!", "nested": {"k": [1]}}
