"""Engine hardening: cancellation during backpressure and cleanup, per-run state under
concurrency, bounded cycles through branches, fatal errors in detached branches.

Every case here failed on the engine before the fix it names; every wait is bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from graphai import BranchError, Callback, Graph, MaxStepsError, node
from graphai.telemetry import names as N
from tests._otel import Signals
from tests._stream import TIMEOUT, drain

pytestmark = pytest.mark.asyncio


async def _until(pred: Any, what: str) -> None:
    """Poll ``pred()`` every millisecond, at most ``TIMEOUT`` seconds."""
    async with asyncio.timeout(TIMEOUT):
        while not pred():
            await asyncio.sleep(0.001)
    assert pred(), what


class TestCancelledProducerAlone:
    """Cancelling one producer that waits for buffer space cancels only that producer."""

    async def test_callback_level(self) -> None:
        cb = Callback(max_buffered=1)
        await cb.acall("first")  # the buffer is full now
        waiting = [asyncio.ensure_future(cb.acall(f"t{i}")) for i in range(3)]
        await _until(lambda: cb.statistics().producer_waiting, "producers wait for space")
        waiting[0].cancel()
        consumer = asyncio.ensure_future(drain(cb))
        done = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), TIMEOUT)
        assert isinstance(done[0], asyncio.CancelledError)
        assert done[1:] == [None, None]
        await cb.close()
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == ["first", "t1", "t2", "<graphai:END:>"]

    async def test_timeout_around_acall_in_parallel_nodes(self) -> None:
        @node(start=True)
        async def src() -> dict[str, Any]:
            return {}

        @node(stream=True)
        async def impatient(callback: Any) -> dict[str, Any]:
            try:
                await asyncio.wait_for(callback.acall("late"), 0.05)
            except TimeoutError:
                return {"impatient": "timed out"}
            return {"impatient": "sent"}

        @node(stream=True)
        async def patient(callback: Any) -> dict[str, Any]:
            await callback.acall("p1")
            await callback.acall("p2")
            return {"patient": "sent"}

        @node(end=True)
        async def done() -> dict[str, Any]:
            return {}

        g = (
            Graph()
            .add_node(src)
            .add_node(impatient)
            .add_node(patient)
            .add_node(done)
            .add_parallel(src, [impatient, patient])
            .add_join([impatient, patient], done)
            .compile()
        )
        cb = Callback(max_buffered=1)
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await asyncio.sleep(0.2)  # the impatient producer times out while both wait
        consumer = asyncio.ensure_future(drain(cb))
        result = await asyncio.wait_for(run, TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert result["patient"] == "sent"
        assert result["impatient"] == "timed out"
        assert [t for t in items if not t.startswith("<graphai:")] == ["p1", "p2"]
        assert items[-1] == "<graphai:END:>"


class TestEndMarkerNeverLost:
    """A cancel that lands while a node's end marker waits for space still delivers it."""

    async def test_cancel_while_end_marker_waits(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def talk(callback: Any) -> dict[str, Any]:
            callback("t1")  # sync calls cannot wait: the buffer is over its bound now
            callback("t2")
            return {}

        g = Graph().add_node(talk).compile()
        cb = Callback(max_buffered=1)
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await _until(lambda: cb.statistics().producer_waiting, "end marker waits for space")
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, TIMEOUT)
        items = await asyncio.wait_for(drain(cb), TIMEOUT)
        assert items == [
            "<graphai:talk:start:>",
            "<graphai:talk:>",
            "t1",
            "t2",
            "<graphai:talk:end:>",
            "<graphai:END:>",
        ]
        assert signals.span("talk").attributes[N.NODE_OUTCOME] == N.OUTCOME_CANCELLED


class _SlowClose(Callback):
    """A user callback whose close() suspends (and is cancelled there)."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = asyncio.Event()

    async def close(self) -> None:
        self.closing.set()
        await asyncio.sleep(30)
        await super().close()


class _SlowEndNode(Callback):
    """A user callback whose end_node() suspends (and is cancelled there)."""

    def __init__(self) -> None:
        super().__init__()
        self.ending = asyncio.Event()

    async def end_node(self, node_name: str) -> None:
        self.ending.set()
        await asyncio.sleep(30)


def _active(signals: Signals) -> list[int]:
    return [p.value for p in signals.points(N.NODE_ACTIVE)]


class TestCancelledCleanupEndsSpans:
    """Cleanup that is itself cancelled still ends the run span and the node spans."""

    async def test_close_cancelled_after_success(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def talk(callback: Any) -> dict[str, Any]:
            await callback.acall("hi")
            return {"ok": True}

        g = Graph(name="cc").add_node(talk).compile()
        cb = _SlowClose()
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await asyncio.wait_for(cb.closing.wait(), TIMEOUT)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, TIMEOUT)
        span = signals.span("invoke_workflow cc")
        assert span.end_time is not None
        assert span.attributes[N.RUN_OUTCOME] == N.OUTCOME_CANCELLED
        assert signals.span("talk").attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        assert set(_active(signals)) <= {0}

    async def test_end_node_cancelled_after_node_error(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def boom(callback: Any) -> dict[str, Any]:
            raise ValueError("nope")

        g = Graph(name="ce").add_node(boom).compile()
        cb = _SlowEndNode()
        run = asyncio.ensure_future(g.execute({}, callback=cb))
        await asyncio.wait_for(cb.ending.wait(), TIMEOUT)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, TIMEOUT)
        node_span = signals.span("boom")
        assert node_span.end_time is not None
        assert node_span.attributes[N.NODE_OUTCOME] == N.OUTCOME_ERROR
        run_span = signals.span("invoke_workflow ce")
        assert run_span.attributes[N.RUN_OUTCOME] == N.OUTCOME_CANCELLED
        assert set(_active(signals)) <= {0}


def _graph_with_failing_branch() -> Graph:
    @node(start=True)
    async def work(tag: str) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"seen": tag}

    @node
    async def side(tag: str) -> dict[str, Any]:
        await asyncio.sleep(0.02)
        if tag.startswith("bad"):
            raise RuntimeError(tag)
        return {}

    @node(end=True)
    async def finish() -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {}

    return (
        Graph()
        .add_node(work)
        .add_node(side)
        .add_node(finish)
        .add_edge(work, finish)
        .add_branch(work, side, wait=False)
        .compile()
    )


class TestBranchErrorsPerRun:
    """Concurrent runs of one Graph each report exactly their own branch errors."""

    async def test_gather(self) -> None:
        g = _graph_with_failing_branch()

        async def one(tag: str) -> list[str]:
            await g.execute({"tag": tag})
            return [str(be.error) for be in g.branch_errors]

        got = await asyncio.wait_for(
            asyncio.gather(one("bad-1"), one("good-1"), one("bad-2"), one("good-2")), TIMEOUT
        )
        assert got == [["bad-1"], [], ["bad-2"], []]

    async def test_sequential_runs_in_one_task_still_reset(self) -> None:
        g = _graph_with_failing_branch()
        await g.execute({"tag": "bad-x"})
        assert [str(be.error) for be in g.branch_errors] == ["bad-x"]
        await g.execute({"tag": "good"})
        assert g.branch_errors == []

    async def test_execute_many_reports_every_run_once(self) -> None:
        g = _graph_with_failing_branch()
        tags = ["bad-0", "good-1", "bad-2", "good-3", "bad-4"]
        await asyncio.wait_for(g.execute_many([{"tag": t} for t in tags], concurrency=5), TIMEOUT)
        assert [str(be.error) for be in g.branch_errors] == ["bad-0", "bad-2", "bad-4"]


def _cyclic_branch_graph(max_steps: int, wait: bool) -> tuple[Graph, list[int]]:
    ran: list[int] = []

    @node(start=True)
    async def a() -> dict[str, Any]:
        return {}

    @node
    async def c() -> dict[str, Any]:
        ran.append(1)
        return {}

    @node(end=True)
    async def b() -> dict[str, Any]:
        return {}

    g = (
        Graph(max_steps=max_steps)
        .add_node(a)
        .add_node(b)
        .add_node(c)
        .add_edge(a, b)
        .add_edge(c, a)  # inside the pipeline, a runs again and starts the branch again
        .add_branch(a, c, wait=wait)
    )
    return g.compile(), ran


class TestMaxStepsBoundsBranchCycles:
    """A cycle through waited or detached branches ends with the max-steps error."""

    @pytest.mark.parametrize("wait", [True, False], ids=["waited", "detached"])
    async def test_cycle_ends(self, wait: bool) -> None:
        g, ran = _cyclic_branch_graph(10, wait)
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        errs = g.branch_errors
        assert {type(be.error) for be in errs} == {MaxStepsError}
        assert len(errs) <= 2  # the innermost pipeline and the one that started it
        assert str(errs[0].error).startswith("Max steps reached in branch pipeline: 10.")
        assert (errs[0].source, errs[0].destination) == ("a", "c")
        assert 1 <= len(ran) <= 10

    async def test_deep_waited_cycle_no_recursion_error(self) -> None:
        g, ran = _cyclic_branch_graph(600, True)
        await asyncio.wait_for(g.execute({}), TIMEOUT * 4)
        assert {type(be.error) for be in g.branch_errors} == {MaxStepsError}
        assert len(ran) <= 600

    @pytest.mark.parametrize("wait", [True, False], ids=["waited", "detached"])
    async def test_cycle_of_branch_edges_only(self, wait: bool) -> None:
        """c's only way on is a branch back to itself: each branch hop counts as a step."""
        ran: list[int] = []

        @node(start=True)
        async def a() -> dict[str, Any]:
            return {}

        @node
        async def c() -> dict[str, Any]:
            ran.append(1)
            return {}

        @node(end=True)
        async def b() -> dict[str, Any]:
            return {}

        g = (
            Graph(max_steps=5)
            .add_node(a)
            .add_node(b)
            .add_node(c)
            .add_edge(a, b)
            .add_branch(a, c, wait=wait)
            .add_branch(c, c, wait=wait)
            .compile()
        )
        await asyncio.wait_for(g.execute({}), TIMEOUT)
        await asyncio.wait_for(g.wait_for_branches(), TIMEOUT)
        (be,) = g.branch_errors
        assert isinstance(be.error, MaxStepsError)
        assert (be.source, be.destination) == ("c", "c")
        assert len(ran) == 5


class Fatal(BaseException):
    """Not an Exception: must not be swallowed like a branch error."""


class TestBaseExceptionInDetachedBranch:
    """A BaseException in a detached branch is re-raised by execute(); its spans end."""

    async def test_reraised_and_spans_end(self, signals: Signals) -> None:
        @node(start=True)
        async def work() -> dict[str, Any]:
            return {}

        @node
        async def doomed() -> dict[str, Any]:
            raise Fatal("stop")

        @node(end=True)
        async def finish() -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {}

        g = (
            Graph(name="fb")
            .add_node(work)
            .add_node(doomed)
            .add_node(finish)
            .add_edge(work, finish)
            .add_branch(work, doomed, wait=False)
            .compile()
        )
        with pytest.raises(Fatal, match="stop"):
            await asyncio.wait_for(g.execute({}), TIMEOUT)
        assert g.branch_errors == []
        assert signals.span("doomed").attributes[N.NODE_OUTCOME] == N.OUTCOME_ERROR
        assert signals.span("invoke_workflow fb").attributes[N.RUN_OUTCOME] == N.OUTCOME_ERROR

    async def test_exception_still_recorded_not_raised(self) -> None:
        g = _graph_with_failing_branch()
        await asyncio.wait_for(g.execute({"tag": "bad"}), TIMEOUT)
        (be,) = g.branch_errors
        assert isinstance(be, BranchError) and isinstance(be.error, RuntimeError)


class TestLateTokens:
    """Tokens sent through a node's view after the node ended are dropped and counted: never
    inside the next node's markers, never on the ended span."""

    @pytest.mark.parametrize("through", ["view", "root"])
    async def test_dropped_counted_never_misattributed(
        self, through: str, signals: Signals, caplog: pytest.LogCaptureFixture
    ) -> None:
        cb = Callback()
        left: list[asyncio.Task[Any]] = []
        go_on = asyncio.Event()

        async def linger(target: Any) -> None:
            await go_on.wait()
            for i in range(3):
                await target.acall(f"late{i}")
            target("late-sync")

        @node(start=True, stream=True)
        async def first(callback: Any) -> dict[str, Any]:
            await callback.acall("f")
            left.append(asyncio.ensure_future(linger(callback if through == "view" else cb)))
            return {}

        @node(end=True, stream=True)
        async def second(callback: Any) -> dict[str, Any]:
            go_on.set()
            await asyncio.wait_for(left[0], TIMEOUT)  # the late tokens arrive while we stream
            await callback.acall("s")
            return {}

        g = Graph(name="late").add_node(first).add_node(second).add_edge(first, second).compile()
        consumer = asyncio.ensure_future(drain(cb))
        with caplog.at_level("WARNING", logger="graphai"):
            await asyncio.wait_for(g.execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == [
            "<graphai:first:start:>",
            "<graphai:first:>",
            "f",
            "<graphai:first:end:>",
            "<graphai:second:start:>",
            "<graphai:second:>",
            "s",
            "<graphai:second:end:>",
            "<graphai:END:>",
        ]
        assert signals.span("first").attributes[N.NODE_OUTPUT_TOKENS] == 1
        assert signals.span("second").attributes[N.NODE_OUTPUT_TOKENS] == 1
        (pt,) = signals.points(N.NODE_LATE_TOKENS)
        assert pt.value == 4 and pt.attributes[N.NODE_NAME] == "first"
        msgs = [r.getMessage() for r in caplog.records if r.name == "graphai"]
        assert msgs == ["callback.late_token node='first'"]
        sdk = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")]
        assert sdk == []  # no "ended span" warnings


class TestSubStepsOnOwnView:
    """start_node()/end_node() on a node's own view open well-nested sub-steps."""

    async def test_nested_markers_and_child_span(self, signals: Signals) -> None:
        @node(start=True, end=True, stream=True)
        async def outer(callback: Any) -> dict[str, Any]:
            await callback.acall("a")
            await callback.start_node("sub")
            await callback.acall("b")
            await callback.end_node("sub")
            await callback.start_node("left_open")
            await callback.acall("c")
            return {}

        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        await asyncio.wait_for(Graph(name="subs").add_node(outer).execute({}, callback=cb), TIMEOUT)
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == [
            "<graphai:outer:start:>",
            "<graphai:outer:>",
            "a",
            "<graphai:sub:start:>",
            "<graphai:sub:>",
            "b",
            "<graphai:sub:end:>",
            "<graphai:left_open:start:>",
            "<graphai:left_open:>",
            "c",
            "<graphai:left_open:end:>",  # closed by the engine before the node's own end
            "<graphai:outer:end:>",
            "<graphai:END:>",
        ]
        outer_span = signals.span("outer")
        for name in ("sub", "left_open"):
            sub = signals.span(name)
            assert sub.parent is not None and sub.parent.span_id == outer_span.context.span_id
            assert sub.attributes[N.NODE_OUTCOME] == N.OUTCOME_OK
        assert outer_span.attributes[N.NODE_OUTPUT_TOKENS] == 3

    @pytest.mark.parametrize("name", ["outer", "other"])
    async def test_ending_what_is_not_an_open_sub_step_is_a_clear_error(self, name: str) -> None:
        @node(start=True, end=True, stream=True)
        async def outer(callback: Any) -> dict[str, Any]:
            await callback.end_node(name)
            return {}

        cb = Callback()
        consumer = asyncio.ensure_future(drain(cb))
        with pytest.raises(ValueError) as info:
            await asyncio.wait_for(Graph().add_node(outer).execute({}, callback=cb), TIMEOUT)
        assert str(info.value) == (
            f"end_node({name!r}) on the view of node 'outer': it ends the innermost open "
            "sub-step (open: none); the engine ends the node itself"
        )
        items = await asyncio.wait_for(consumer, TIMEOUT)
        assert items == [
            "<graphai:outer:start:>",
            "<graphai:outer:>",
            "<graphai:outer:end:>",
            "<graphai:END:>",
        ]
