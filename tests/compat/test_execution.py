"""
Executing a graph as graphai-lib 0.0.12 does (section 7 checks 2-10 and 40, section 2.1):
signature-filtered arguments and defaults, the ``input``/``upstream``/``state``/``callback``
parameters, output merging, upstream's error messages, ``execute_many``. Check 10's quirk (the
caller's input mutated) is asserted as fixed (``docs/differences.md`` fix 4); ``tests/fixes/`` proves
the difference from upstream.
"""

import asyncio
import copy

import pytest

from graphai import Graph, node
from tests._stream import TIMEOUT
from tests.compat._support import execute_streamed


def single(fn, **flags):
    """A graph of one start+end node built from ``fn``."""
    n = node(fn, start=True, end=True, **flags)
    return Graph().add_node(n), n


class TestDataFlow:
    """Signature-filtered arguments; outputs merge, later keys win, into a new dict (checks 2-8)."""

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
        """Check 10, fixed (docs/differences.md fix 4): no `callback`/`state` added to the caller's
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


class TestExecuteMany:
    """`execute_many` keeps input order, shares state, propagates the first failure (check 40)."""

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
    """The caller's input dict, nested objects included, is never mutated (check 10, fixed)."""

    async def test_deep_input_unchanged(self):
        async def f(q: str, state: dict):
            return {"q": q + "!"}

        g, _ = single(f)
        inp = {"q": "a", "nested": {"k": [1]}}
        snapshot = copy.deepcopy(inp)
        result = await g.execute(inp)
        assert inp == snapshot
        assert result == {"q": "a!", "nested": {"k": [1]}}
