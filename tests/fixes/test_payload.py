"""The payload (fixes 4 and 8): the caller's input dict is never mutated and the result holds no
engine-injected keys; a node with ``**kwargs`` receives the whole payload."""

import asyncio

from graphai import Graph, node
from tests._stream import TIMEOUT, run_with_consumer


class TestFix04CallerInputNotMutated:
    """The caller's input dict is never mutated; the result holds no engine-injected
    `callback`, `state` or `upstream` keys."""

    async def test_input_untouched_and_no_injected_keys(self):
        """Fails on upstream because the start node is invoked with the caller's own dict, into
        which `invoke` writes `callback` and `state`; `state` then also leaks into the result."""

        @node(start=True, stream=True)
        async def first(q: str, state: dict, callback):
            await callback.acall(q)
            return {"a": 1}

        @node(end=True)
        async def second(a: int, state: dict):
            return {"b": a + 1}

        g = Graph(initial_state={"s": 1}).add_node(first).add_node(second).add_edge(first, second)
        inp = {"q": "hi"}
        result, error, _ = await run_with_consumer(g, inp)
        assert error is None
        assert inp == {"q": "hi"}
        assert result == {"q": "hi", "a": 1, "b": 2}

    async def test_no_state_key_without_streaming(self):
        """Fails on upstream because a node declaring `state` makes `invoke` write the graph
        state into the caller's dict and into the result."""

        @node(start=True, end=True)
        async def only(state: dict):
            return {"n": len(state)}

        g = Graph(initial_state={"x": 1}).add_node(only)
        inp: dict = {}
        assert await asyncio.wait_for(g.execute(inp), TIMEOUT) == {"n": 1}
        assert inp == {}


class TestFix08KwargsNodes:
    """A node with `**kwargs` receives the whole payload."""

    async def test_kwargs_receive_the_payload(self):
        """Fails on upstream because argument filtering keeps only declared names and binds
        `kwargs` itself: the function receives `kwargs == {'kwargs': {}}`."""
        seen = []

        @node(start=True, end=True)
        async def f(**kwargs):
            seen.append(kwargs)
            return {"n": len(kwargs)}

        result = await asyncio.wait_for(Graph().add_node(f).execute({"x": 1, "y": 2}), TIMEOUT)
        assert seen == [{"x": 1, "y": 2}]
        assert result == {"x": 1, "y": 2, "n": 2}

    async def test_named_parameter_plus_kwargs(self):
        """Fails on upstream because `rest` is bound as `{'rest': {}}` instead of the other
        payload keys."""
        seen = []

        @node(start=True)
        async def first():
            return {"b": 2}

        @node(end=True)
        async def second(a: int, **rest):
            seen.append((a, rest))
            return {}

        g = Graph().add_node(first).add_node(second).add_edge(first, second)
        await asyncio.wait_for(g.execute({"a": 1, "c": 3}), TIMEOUT)
        ((a, rest),) = seen
        assert a == 1
        assert "a" not in rest
        assert (rest["b"], rest["c"]) == (2, 3)
