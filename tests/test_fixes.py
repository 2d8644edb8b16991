"""
The upstream bugs graphai fixes on purpose (``docs/differences.md``, "The 12 fixes", 1-12).

One class per numbered fix; every test states in its docstring why it fails on graphai-lib
0.0.12. The file imports only names upstream also has (``graphai``, ``graphai.callback``,
``graphai.graph``), so it can be run unchanged against the upstream package to prove that.
"""

import asyncio
import itertools
import time
import warnings

import pytest

from graphai import Callback, Graph, node
from graphai.callback import EventCallback, GraphEventType
from tests._stream import TIMEOUT, drain, run_with_consumer


class TestFix01StreamAlwaysEnds:
    """`execute()` always ends the stream with END: without streaming nodes, with streaming only
    inside parallel paths or branches, and when a node raises (the exception still propagates;
    the failing node's markers stay balanced)."""

    async def test_graph_without_streaming_nodes(self):
        """Fails on upstream because END is only sent when a `callback` key survives into the
        final payload, which needs a streaming node on the main path: the consumer hangs."""

        @node(start=True, end=True)
        async def plain():
            return {"p": 1}

        result, error, items = await run_with_consumer(Graph().add_node(plain), {})
        assert error is None
        assert result == {"p": 1}
        assert items == ["<graphai:END:>"]

    async def test_streaming_only_inside_parallel_paths(self):
        """Fails on upstream because the fork merge drops the `callback` key, so `execute()`
        never closes the callback and the consumer hangs after the last end marker."""

        @node(start=True)
        async def start():
            return {}

        @node(stream=True)
        async def p(callback):
            await callback.acall("p-tok")
            return {"p": 1}

        @node(stream=True)
        async def q(callback):
            await callback.acall("q-tok")
            return {"q": 1}

        @node(end=True)
        async def end():
            return {}

        g = Graph()
        for n in (start, p, q, end):
            g.add_node(n)
        g.add_parallel(start, [p, q]).add_join([p, q], end)
        result, error, items = await run_with_consumer(g, {})
        assert error is None
        assert result == {"p": 1, "q": 1}
        assert sorted(items[:-1]) == sorted(
            [
                "<graphai:p:start:>",
                "<graphai:p:>",
                "p-tok",
                "<graphai:p:end:>",
                "<graphai:q:start:>",
                "<graphai:q:>",
                "q-tok",
                "<graphai:q:end:>",
            ]
        )
        assert items[-1] == "<graphai:END:>"

    async def test_streaming_only_inside_a_branch(self):
        """Fails on upstream because branch pipeline results never reach the main payload, so
        no `callback` key survives and END is never sent: the consumer hangs."""

        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {"done": True}

        @node(stream=True)
        async def side(callback):
            await callback.acall("side-tok")
            return {}

        g = Graph().add_node(work).add_node(done).add_node(side)
        g.add_edge(work, done).add_branch(work, side)
        result, error, items = await run_with_consumer(g, {})
        assert error is None
        assert result == {"done": True}
        assert items == [
            "<graphai:side:start:>",
            "<graphai:side:>",
            "side-tok",
            "<graphai:side:end:>",
            "<graphai:END:>",
        ]

    async def test_node_error_ends_stream_and_propagates(self):
        """Fails on upstream because a raising node leaves the callback open (no end marker,
        no END): the consumer hangs although `execute()` has raised."""

        @node(start=True, end=True, stream=True)
        async def boom(callback):
            await callback.acall("partial")
            raise RuntimeError("boom")

        result, error, items = await run_with_consumer(Graph().add_node(boom), {})
        assert result is None
        assert type(error) is RuntimeError
        assert str(error) == "boom"
        assert items == [
            "<graphai:boom:start:>",
            "<graphai:boom:>",
            "partial",
            "<graphai:boom:end:>",
            "<graphai:END:>",
        ]

    async def test_error_in_plain_node_after_streaming_node(self):
        """Fails on upstream because the exception skips the final `close()`: the consumer
        sees the first node's markers and then waits forever."""

        @node(start=True, stream=True)
        async def s(callback):
            await callback.acall("ok")
            return {}

        @node(end=True)
        async def bad():
            raise ValueError("bad")

        g = Graph().add_node(s).add_node(bad).add_edge(s, bad)
        _, error, items = await run_with_consumer(g, {})
        assert type(error) is ValueError
        assert items == [
            "<graphai:s:start:>",
            "<graphai:s:>",
            "ok",
            "<graphai:s:end:>",
            "<graphai:END:>",
        ]


def _parallel_streamers(use_node_name):
    @node(start=True)
    async def start():
        return {}

    def streamer(name):
        async def f(callback):
            for i in (1, 2):
                if use_node_name:
                    await callback.acall(f"{name}-{i}", node_name=name)
                else:
                    await callback.acall(f"{name}-{i}")
                await asyncio.sleep(0)
            return {name: True}

        return node(f, name=name, stream=True)

    p, q = streamer("p"), streamer("q")

    @node(end=True)
    async def end():
        return {}

    g = Graph()
    for n in (start, p, q, end):
        g.add_node(n)
    return g.add_parallel(start, [p, q]).add_join([p, q], end)


class TestFix02MarkersCarryTheirOwnNode:
    """Under parallel execution each node's start/end markers carry its own name, and every
    token is attributed to the node that produced it."""

    async def test_end_markers_under_parallel_execution(self):
        """Fails on upstream because `end_node` labels the end marker with the callback's shared
        *current* node: both end markers read `<graphai:q:end:>`, none `<graphai:p:end:>`."""
        _, error, items = await run_with_consumer(_parallel_streamers(False), {})
        assert error is None
        for name in ("p", "q"):
            start = items.index(f"<graphai:{name}:start:>")
            assert items.count(f"<graphai:{name}:start:>") == 1
            assert items.count(f"<graphai:{name}:>") == 1
            assert items.count(f"<graphai:{name}:end:>") == 1
            end = items.index(f"<graphai:{name}:end:>")
            assert start < items.index(f"{name}-1") < items.index(f"{name}-2") < end
        assert items[-1] == "<graphai:END:>"
        assert len(items) == 11

    async def test_tokens_attributed_to_their_node(self):
        """Fails on upstream because the shared callback's current node is whichever parallel
        node started last, so `acall(token, node_name="p")` from `p` raises
        `ValueError: Node name mismatch: q != p`."""
        result, error, items = await run_with_consumer(_parallel_streamers(True), {})
        assert error is None
        assert result == {"p": True, "q": True}
        assert sorted(t for t in items if not t.startswith("<")) == ["p-1", "p-2", "q-1", "q-2"]

    async def test_event_callback_end_events_name_their_node(self):
        """Fails on upstream because `EventCallback.end_node` also uses the shared current node
        name: two `end_node` events for `q`, none for `p`."""
        cb = EventCallback()
        _, error, events = await run_with_consumer(_parallel_streamers(False), {}, cb)
        assert error is None
        ends = sorted(e.token for e in events if e.type == GraphEventType.END_NODE)
        starts = sorted(e.token for e in events if e.type == GraphEventType.START_NODE)
        assert starts == ["p", "q"]
        assert ends == ["p", "q"]
        assert events[-1].type == GraphEventType.END


class TestFix03TokenFormatApplied:
    """`token_format` is applied to regular string tokens (special tokens keep their own
    format; non-string tokens pass through unchanged)."""

    async def test_token_format(self):
        """Fails on upstream because `token_format` is stored but never applied: the consumer
        reads the raw `Hel`, `lo`."""
        marker = {"kind": "tool-call"}

        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("Hel")
            callback("lo")
            await callback.acall(marker)
            return {}

        cb = Callback(token_format="TOKEN: {token}")
        _, error, items = await run_with_consumer(Graph().add_node(n), {}, cb)
        assert error is None
        assert items == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "TOKEN: Hel",
            "TOKEN: lo",
            marker,
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]


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


class TestFix05CompileCountsJoinsAndSetEndNode:
    """`compile()` counts join edges for reachability and `set_end_node` as an end node."""

    def test_join_only_destination_is_reachable(self):
        """Fails on upstream because `compile()` skips `JoinEdge`s: `GraphCompileError:
        Unreachable nodes: ['end']` although `execute()` reaches `end`."""

        @node(start=True)
        async def start():
            return {}

        @node
        async def a():
            return {}

        @node
        async def b():
            return {}

        @node(end=True)
        async def end():
            return {}

        g = Graph()
        for n in (start, a, b, end):
            g.add_node(n)
        g.add_parallel(start, [a, b]).add_join([a, b], end)
        assert g.compile() is g
        assert g.compile(strict=True) is g

    async def test_set_end_node_counts(self):
        """Fails on upstream because `set_end_node` only stores the node: `compile()` raises
        `No end node defined` (and `execute()` would not stop there)."""

        @node(start=True)
        async def start():
            return {}

        @node
        async def last():
            return {"last": True}

        g = Graph().add_node(start).add_node(last).add_edge(start, last).set_end_node(last)
        assert g.compile() is g
        assert await asyncio.wait_for(g.execute({}), TIMEOUT) == {"last": True}


class TestFix06CancellationPropagates:
    """Cancelling a consumer of `aiter()` propagates `CancelledError` (the task ends
    cancelled)."""

    async def test_cancelled_consumer_task_is_cancelled(self):
        """Fails on upstream because `aiter()` catches `CancelledError` and breaks: the task
        finishes normally with `[]` and `task.cancelled()` is False."""
        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        await asyncio.sleep(0)
        consumer.cancel()
        done, _ = await asyncio.wait({consumer}, timeout=TIMEOUT)
        assert done == {consumer}
        assert consumer.cancelled()

    async def test_cancelled_mid_stream(self):
        """Fails on upstream because the cancelled consumer's `async for` ends normally and
        returns the items seen so far instead of raising `CancelledError`."""
        cb = Callback()
        seen = []
        started = asyncio.Event()

        async def consume():
            async for t in cb.aiter():
                seen.append(t)
                started.set()

        consumer = asyncio.ensure_future(consume())
        await cb.acall("first")
        await asyncio.wait_for(started.wait(), TIMEOUT)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(consumer, TIMEOUT)
        assert seen == ["first"]


class TestFix07NoInBandEnd:
    """A content token equal to the END string does not end the stream; only the real END
    does."""

    async def test_content_equal_to_end_string(self):
        """Fails on upstream because `aiter()` compares every item with the END string and stops
        at the content token `<graphai:END:>`: the consumer loses `after` and the markers."""

        @node(start=True, end=True, stream=True)
        async def n(callback):
            await callback.acall("before")
            await callback.acall("<graphai:END:>")
            await callback.acall("after")
            return {}

        _, error, items = await run_with_consumer(Graph().add_node(n), {})
        assert error is None
        assert items == [
            "<graphai:n:start:>",
            "<graphai:n:>",
            "before",
            "<graphai:END:>",
            "after",
            "<graphai:n:end:>",
            "<graphai:END:>",
        ]


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


class TestFix09JoinsInsideBranches:
    """A join inside a branch pipeline runs its destination once, with the merged payload."""

    async def test_join_in_pipeline_runs(self):
        """Fails on upstream because branch pipelines ignore join edges: the forked paths end at
        the join sources and `joined` never runs."""
        ran = []

        @node(start=True)
        async def work():
            return {}

        @node(end=True)
        async def done():
            return {"done": True}

        @node
        async def side():
            return {}

        @node
        async def a():
            return {"a": 1}

        @node
        async def b():
            return {"b": 2}

        @node
        async def joined(a: int, b: int):
            ran.append((a, b))
            return {}

        g = Graph()
        for n in (work, done, side, a, b, joined):
            g.add_node(n)
        g.add_edge(work, done).add_branch(work, side)
        g.add_parallel(side, [a, b]).add_join([a, b], joined)
        result = await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert result == {"done": True}
        assert g.branch_errors == []
        assert ran == [(1, 2)]


class TestFix10AddEdgeTypeError:
    """`add_edge` with an object that is neither a node nor a name raises `TypeError` naming
    the argument."""

    def test_add_edge_with_int(self):
        """Fails on upstream because `_get_node` never assigns its local for such objects:
        `UnboundLocalError: cannot access local variable 'node'`."""

        @node(start=True)
        async def a():
            return {}

        g = Graph().add_node(a)
        with pytest.raises(TypeError) as ei:
            g.add_edge(a, 123)
        assert "destination" in str(ei.value)
        assert "123" in str(ei.value)
        assert g.edges == []


class TestFix11ConstantTimeSuccessors:
    """Per-step overhead does not grow with the number of edges in the graph."""

    async def test_per_step_cost_independent_of_edge_count(self):
        """Fails on upstream because every step scans the whole edge list (twice: regular and
        branch edges): with 5,000 unrelated edges a step costs tens of times more."""

        def build(padding):
            async def step(i: int = 0):
                return {"i": i + 1}

            g = Graph(max_steps=100)
            chain = [node(step, name=f"n{k}", start=k == 0, end=k == 19) for k in range(20)]
            for nd in chain:
                g.add_node(nd)
            for x, y in itertools.pairwise(chain):
                g.add_edge(x, y)
            if padding:

                async def pad():
                    return {}

                pa, pb = node(pad, name="pad_a"), node(pad, name="pad_b")
                g.add_node(pa).add_node(pb)
                for _ in range(padding):
                    g.add_edge(pa, pb)
            return g

        small, big = build(0), build(5000)

        async def per_run(g, runs=20):
            t0 = time.perf_counter()
            for _ in range(runs):
                await g.execute({})
            return (time.perf_counter() - t0) / runs

        assert await big.execute({}) == {"i": 20}
        best_small = best_big = float("inf")
        for _ in range(5):
            best_small = min(best_small, await per_run(small))
            best_big = min(best_big, await per_run(big))
        assert best_big < 3 * best_small, (best_small, best_big)


class TestFix12NoDeprecationWarnings:
    """Constructing `Callback` or `EventCallback` (directly or through the graph) emits no
    `DeprecationWarning`."""

    def test_no_warnings(self):
        """Fails on upstream because `Callback.__init__` warns that the class is deprecated and
        `EventCallback.__init__` warns about its format parameters, on every construction."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Callback()
            Callback(identifier="x", special_token_format="<{token}>", token_format="{token}")
            EventCallback()
            EventCallback(identifier="x")
            Graph().get_callback()
            Graph().set_callback(EventCallback).get_callback()
        assert [w for w in caught if issubclass(w.category, DeprecationWarning)] == []
