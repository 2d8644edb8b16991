"""
The lifecycle matrix: every way a run can end x where the affected node sits.

Outcomes: success, a node raising, the execute() task cancelled, the consumer abandoning
``aiter()`` (``break``), the consumer closing the ``aiter()`` generator (``aclose()``: a
``GeneratorExit`` inside it), the consumer task cancelled, ``asyncio.timeout`` firing, an error
inside a detached branch and an error in one of several parallel paths (while a sibling is
still streaming), plus three cells of the hardening round: cleanup that is itself cancelled (a
``Callback`` subclass whose ``close()`` is cancelled after END), tokens sent after their node
ended (from a task the node left running), and a cancel while a producer waits for buffer space
(``max_buffered``).

Placements of the target node ``T``: a streaming node and a non-streaming node on the main path,
a streaming node inside parallel paths, and a streaming node inside a branch pipeline. The last
two outcomes wrap the placement once more (a branch, or parallel paths, around it), so every
cell exercises a different shape.

For every cell (each run closes its telemetry once, telemetry changes no result and never breaks
the graph; fix 1 of ``docs/differences.md``, the stream always ends):

- no wait is unbounded and the consumer never hangs;
- every started span ends exactly once, and only the nodes that ran have spans;
- ``graphai.node.outcome`` / ``graphai.run.outcome`` and the span status are right: ERROR with
  ``error.type`` = class name for errors, UNSET (never ERROR) for cancellations;
- ``graphai.node.duration`` counts each node run once, with its outcome;
- nothing logs "Failed to detach context";
- ``execute()`` returns or raises as documented, and a consumer that stays sees the stream end
  with exactly one END after balanced start/end markers;
- ``graphai.telemetry.active_streams()`` is empty afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import graphai.telemetry as telemetry
from graphai import Callback, ConsumerGoneError, Graph, node
from tests.reliability._support import RUN_SPAN, Telemetry, bounded, until

END = "<graphai:END:>"

OUTCOMES = [
    "success",
    "raises",
    "cancelled",
    "consumer_break",
    "consumer_aclose",
    "consumer_cancelled",
    "timeout",
    "branch_error",
    "parallel_error",
    "cleanup_cancelled",
    "late_token",
    "bounded_cancel",
]
PLACEMENTS = ["streaming", "plain", "parallel", "branch"]

OK, ERROR, CANCELLED = "ok", "error", "cancelled"


class Boom(RuntimeError):
    """The error the target node raises."""


@dataclass
class Probe:
    """Events that let the test inject a fault at a precise point of the run."""

    outcome: str
    t_entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # siblings that finish (ok) / that block forever (cancelled by the fault)
    done: dict[str, asyncio.Event] = field(default_factory=dict)
    blocked: dict[str, asyncio.Event] = field(default_factory=dict)
    lingering: list[asyncio.Task[Any]] = field(default_factory=list)
    late_sent: list[str] = field(default_factory=list)

    async def _linger(self, emit: Any) -> None:
        """Send through T's callback once T has ended (a task T left running)."""
        await until(
            lambda: not any(s["node"] == "T" for s in telemetry.active_streams()),
            what="T to end",
        )
        for i in range(2):
            try:
                await emit(f"late{i}")
            except Exception:  # the stream closed meanwhile: nothing to deliver to
                return
            self.late_sent.append(f"late{i}")

    async def target(self, emit: Any) -> dict[str, Any]:
        if emit is not None:
            await emit("t0")
        o = self.outcome
        if o == "late_token" and emit is not None:
            self.lingering.append(asyncio.ensure_future(self._linger(emit)))
        if o in ("success", "late_token", "cleanup_cancelled"):
            if emit is not None:
                await emit("t1")
            return {"t": 1}
        if o in ("raises", "branch_error"):
            raise Boom("boom")
        if o == "parallel_error":
            # fail only once every sibling is mid-stream, so they are surely cancelled
            for ev in self.blocked.values():
                await ev.wait()
            raise Boom("boom")
        self.t_entered.set()
        if o == "bounded_cancel" and emit is not None:
            for ev in self.done.values():  # siblings have streamed and ended first
                await ev.wait()
            for i in range(1, 1000):  # fills the bounded buffer, then waits for space
                await emit(f"t{i}")
        await self.release.wait()  # never set for cancel/timeout
        if emit is not None:
            await emit("t1")  # the consumer is gone by now: ConsumerGoneError
        return {"t": 1}


def _target(probe: Probe, stream: bool) -> Any:
    if stream:

        async def T(callback: Any) -> dict[str, Any]:
            return await probe.target(callback.acall)

        return node(T, name="T", stream=True)

    async def T_plain() -> dict[str, Any]:
        return await probe.target(None)

    return node(T_plain, name="T")


def _sibling(probe: Probe, name: str, *, block: bool) -> Any:
    ev = asyncio.Event()
    (probe.blocked if block else probe.done)[name] = ev

    async def sib(callback: Any) -> dict[str, Any]:
        await callback.acall(f"{name.lower()}0")
        ev.set()
        if block:
            await asyncio.Event().wait()  # until cancelled
        return {name.lower(): 1}

    return node(sib, name=name, stream=True)


def _plain(name: str, **flags: Any) -> Any:
    async def plain() -> dict[str, Any]:
        return {name.lower(): 1}

    return node(plain, name=name, **flags)


def _streamer(name: str, **flags: Any) -> Any:
    async def streamer(callback: Any) -> dict[str, Any]:
        await callback.acall(f"{name.lower()}0")
        return {name.lower(): 1}

    return node(streamer, name=name, stream=True, **flags)


@dataclass
class Cell:
    graph: Graph
    probe: Probe
    nodes: dict[str, str]  # node -> expected outcome (nodes that must have run)
    run: str  # expected run outcome
    raises: type[BaseException] | None
    branch_errors: list[type[BaseException]]
    result: dict[str, Any] | None  # expected execute() result when it returns
    trigger: str  # the token on which an abandoning consumer leaves


def _build(outcome: str, placement: str) -> Cell:
    """The graph of one cell and what must come out of it."""
    probe = Probe(outcome)
    g = Graph()
    first = _streamer("first", start=True)
    last = _streamer("last", end=True)
    g.add_node(first).add_node(last)
    stream_t = placement != "plain"
    t = _target(probe, stream_t)
    g.add_node(t)
    trigger = "t0" if stream_t else "<graphai:first:end:>"

    if outcome == "branch_error":
        # T raises inside a *detached* branch (wait=False) around the placement
        if placement in ("streaming", "plain"):
            g.add_edge(first, last).add_branch(first, t, wait=False)
            nodes = {"first": OK, "T": ERROR, "last": OK}
        elif placement == "parallel":
            p, s, j = _plain("P"), _sibling(probe, "S", block=False), _plain("J")
            for n in (p, s, j):
                g.add_node(n)
            g.add_parallel(first, [p, s]).add_join([p, s], j).add_edge(j, last)
            g.add_branch(p, t, wait=False)
            nodes = {"first": OK, "P": OK, "S": OK, "J": OK, "last": OK, "T": ERROR}
        else:  # a detached branch inside a branch pipeline
            b0 = _plain("B0")
            g.add_node(b0).add_edge(first, last).add_branch(first, b0)
            g.add_branch(b0, t, wait=False)
            nodes = {"first": OK, "B0": OK, "T": ERROR, "last": OK}
        result = {k.lower(): 1 for k in nodes if k in ("first", "P", "S", "J", "last")}
        return Cell(g.compile(), probe, nodes, OK, None, [Boom], result, trigger)

    if outcome == "parallel_error":
        # T raises in one parallel path while its siblings are blocked mid-stream
        if placement in ("streaming", "plain"):
            s, j = _sibling(probe, "S", block=True), _plain("J")
            g.add_node(s).add_node(j)
            g.add_parallel(first, [t, s]).add_join([t, s], j).add_edge(j, last)
            nodes = {"first": OK, "T": ERROR, "S": CANCELLED}
            return Cell(g.compile(), probe, nodes, ERROR, Boom, [], None, trigger)
        if placement == "parallel":  # nested forks
            p, s, s2 = (
                _plain("P"),
                _sibling(probe, "S", block=True),
                _sibling(probe, "S2", block=True),
            )
            j2, j = _plain("J2"), _plain("J")
            for n in (p, s, s2, j2, j):
                g.add_node(n)
            g.add_parallel(first, [p, s]).add_parallel(p, [t, s2])
            g.add_join([t, s2], j2).add_join([j2, s], j).add_edge(j, last)
            nodes = {"first": OK, "P": OK, "T": ERROR, "S2": CANCELLED, "S": CANCELLED}
            return Cell(g.compile(), probe, nodes, ERROR, Boom, [], None, trigger)
        # parallel paths inside a branch pipeline
        b0, s, j = _plain("B0"), _sibling(probe, "S", block=True), _plain("J")
        for n in (b0, s, j):
            g.add_node(n)
        g.add_edge(first, last).add_branch(first, b0)
        g.add_parallel(b0, [t, s]).add_join([t, s], j)
        nodes = {"first": OK, "B0": OK, "T": ERROR, "S": CANCELLED, "last": OK}
        return Cell(g.compile(), probe, nodes, OK, None, [Boom], {"first": 1, "last": 1}, trigger)

    # the six base outcomes on the four base placements
    if placement in ("streaming", "plain"):
        g.add_edge(first, t).add_edge(t, last)
        before = {"first": OK}
        after = ["last"]
    elif placement == "parallel":
        s, j = _sibling(probe, "S", block=False), _plain("J")
        g.add_node(s).add_node(j)
        g.add_parallel(first, [t, s]).add_join([t, s], j).add_edge(j, last)
        before = {"first": OK, "S": OK}
        after = ["J", "last"]
    else:
        g.add_edge(first, last).add_branch(first, t)
        before = {"first": OK}
        after = ["last"]
    g.compile()
    in_branch = placement == "branch"

    if outcome in ("success", "late_token"):
        nodes = {**before, "T": OK, **dict.fromkeys(after, OK)}
        result = {k.lower(): 1 for k in nodes if not (in_branch and k == "T")}
        return Cell(g, probe, nodes, OK, None, [], result, trigger)
    if outcome == "cleanup_cancelled":  # every node ran; the run ends cancelled in close()
        nodes = {**before, "T": OK, **dict.fromkeys(after, OK)}
        return Cell(g, probe, nodes, CANCELLED, asyncio.CancelledError, [], None, trigger)
    if outcome == "raises":
        if in_branch:  # recorded in branch_errors, the main path goes on
            nodes = {**before, "T": ERROR, "last": OK}
            return Cell(g, probe, nodes, OK, None, [Boom], {"first": 1, "last": 1}, trigger)
        return Cell(g, probe, {**before, "T": ERROR}, ERROR, Boom, [], None, trigger)
    if outcome in ("cancelled", "timeout", "bounded_cancel"):
        exc = TimeoutError if outcome == "timeout" else asyncio.CancelledError
        return Cell(g, probe, {**before, "T": CANCELLED}, CANCELLED, exc, [], None, trigger)
    # the consumer leaves while T waits; T's next token raises ConsumerGoneError
    if placement == "plain":
        # T itself never touches the stream: it ends ok, and the next streaming node's start
        # marker is what finds the consumer gone
        nodes = {**before, "T": OK, "last": CANCELLED}
        return Cell(g, probe, nodes, CANCELLED, ConsumerGoneError, [], None, trigger)
    if in_branch:
        # the branch records the error (branch exceptions never propagate); the main path's
        # next streaming node then finds the consumer gone as well
        nodes = {**before, "T": CANCELLED, "last": CANCELLED}
        return Cell(
            g, probe, nodes, CANCELLED, ConsumerGoneError, [ConsumerGoneError], None, trigger
        )
    return Cell(
        g, probe, {**before, "T": CANCELLED}, CANCELLED, ConsumerGoneError, [], None, trigger
    )


async def _drain(cb: Callback) -> list[Any]:
    return [tok async for tok in cb.aiter()]


async def _leave_by_break(cb: Callback, trigger: str) -> list[Any]:
    items = []
    async for tok in cb.aiter():
        items.append(tok)
        if tok == trigger:
            break  # the generator is finalised by the event loop's asyncgen hook
    return items


async def _leave_by_aclose(cb: Callback, trigger: str) -> list[Any]:
    items = []
    agen = cb.aiter()
    while True:
        tok = await agen.__anext__()
        items.append(tok)
        if tok == trigger:
            await agen.aclose()  # GeneratorExit inside aiter(), mid-stream
            return items


async def _leave_by_cancel(cb: Callback, trigger: str, seen: list[Any]) -> None:
    async for tok in cb.aiter():
        seen.append(tok)
        if tok == trigger:
            await asyncio.Event().wait()  # parked until the test cancels this task


async def _ready(probe: Probe) -> None:
    """The fault point: T is parked and every sibling meant to finish has finished."""
    await bounded(probe.t_entered.wait(), what="T to start")
    for name, ev in probe.done.items():
        await bounded(ev.wait(), what=f"{name} to finish")


def _markers_balanced(items: list[Any]) -> Counter[str]:
    """Check start/id/end markers pair up per node, in order; returns tokens per node."""
    open_: dict[str, int] = {}
    seen: Counter[str] = Counter()
    for tok in items:
        if not (isinstance(tok, str) and tok.startswith("<graphai:") and tok.endswith(":>")):
            continue
        body = tok[len("<graphai:") : -2]
        if body == "END":
            continue
        if body.endswith(":start"):
            name = body[: -len(":start")]
            open_[name] = open_.get(name, 0) + 1
            seen[name] += 1
        elif body.endswith(":end"):
            name = body[: -len(":end")]
            assert open_.get(name, 0) > 0, f"end marker of {name} without a start: {items}"
            open_[name] -= 1
    assert not any(open_.values()), f"unbalanced markers {open_}: {items}"
    return seen


class CancelledCloseCallback(Callback):
    """A user subclass whose ``close()`` awaits after END, and gets cancelled there."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = asyncio.Event()

    async def close(self) -> None:
        await super().close()
        self.closing.set()
        await asyncio.Event().wait()  # e.g. flushing a transport: the request is cancelled


async def _drain_when(cb: Callback, go: asyncio.Event) -> list[Any]:
    await go.wait()  # a consumer that falls behind: the bounded buffer fills up
    return [tok async for tok in cb.aiter()]


class RelayCallback(Callback):
    """A user subclass (as ``Graph.set_callback`` allows): overriding ``acall`` takes the
    engine off its native per-node views, onto ``start_node``/``end_node``."""

    async def acall(self, token: Any, node_name: str | None = None) -> None:
        await super().acall(token, node_name)


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("outcome", OUTCOMES)
async def test_every_exit_path_ends_each_span_once(
    outcome: str, placement: str, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    if outcome == "cleanup_cancelled":
        cb: Callback = CancelledCloseCallback()
    elif outcome == "bounded_cancel":
        cb = Callback(max_buffered=16)
    else:
        cb = Callback()
    await _check_cell(outcome, placement, cb, tel, caplog)


@pytest.mark.parametrize(
    "outcome", ["success", "raises", "cancelled", "consumer_break", "timeout", "parallel_error"]
)
async def test_callback_subclass_gets_one_span_per_node_run(
    outcome: str, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """The same contract through a user's Callback subclass (the non-native engine path)."""
    await _check_cell(outcome, "streaming", RelayCallback(), tel, caplog)


async def _check_cell(
    outcome: str, placement: str, cb: Callback, tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    if outcome == "timeout" and sys.version_info < (3, 11):
        pytest.skip("asyncio.timeout needs Python 3.11")
    caplog.set_level(logging.ERROR, logger="opentelemetry.context")
    caplog.set_level(logging.WARNING, logger="opentelemetry.sdk.trace")
    cell = _build(outcome, placement)
    g, probe = cell.graph, cell.probe

    # -- drive the cell ------------------------------------------------------------------------
    leaving = outcome.startswith("consumer_")
    seen: list[Any] = []
    go = asyncio.Event()
    if outcome == "bounded_cancel":
        consumer = asyncio.ensure_future(_drain_when(cb, go))
    elif outcome == "consumer_break":
        consumer = asyncio.ensure_future(_leave_by_break(cb, cell.trigger))
    elif outcome == "consumer_aclose":
        consumer = asyncio.ensure_future(_leave_by_aclose(cb, cell.trigger))
    elif outcome == "consumer_cancelled":
        consumer = asyncio.ensure_future(_leave_by_cancel(cb, cell.trigger, seen))
    else:
        consumer = asyncio.ensure_future(_drain(cb))

    deadline: list[Any] = []

    async def run() -> dict[str, Any]:
        if outcome == "timeout":
            async with asyncio.timeout(None) as cm:
                deadline.append(cm)
                return await g.execute({}, callback=cb)
        return await g.execute({}, callback=cb)

    task = asyncio.ensure_future(run())
    if outcome == "cleanup_cancelled":
        assert isinstance(cb, CancelledCloseCallback)
        await bounded(cb.closing.wait(), what="close() to park after END")
        task.cancel()
    elif outcome == "bounded_cancel":
        await _ready(probe)
        if g.nodes["T"].stream:
            await until(lambda: cb.statistics().producer_waiting, what="T to wait for space")
        task.cancel()
    elif outcome in ("cancelled", "timeout"):
        await _ready(probe)
        if outcome == "cancelled":
            task.cancel()
        else:
            deadline[0].reschedule(asyncio.get_running_loop().time())
    elif leaving:
        await _ready(probe)
        if outcome == "consumer_cancelled":
            await until(lambda: cell.trigger in seen, what="the consumer to see the trigger")
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):  # aiter() never swallows it (fix 6)
                await bounded(consumer, what="the consumer to end cancelled")
            items = seen
        else:
            items = await bounded(consumer, what="the consumer to leave")
        assert items[-1] == cell.trigger
        await until(lambda: cb.statistics().consumer_gone, what="aiter() to be finalised")
        probe.release.set()

    result: dict[str, Any] | None = None
    error: BaseException | None = None
    try:
        result = await bounded(task, what="execute()")
    except BaseException as exc:  # CancelledError included: it is an expected outcome here
        error = exc
    go.set()
    if outcome in ("cancelled", "cleanup_cancelled", "bounded_cancel"):
        assert task.cancelled(), f"execute() should end cancelled, got {error!r}"
    for t in probe.lingering:
        await bounded(t, what="the lingering task")
    # -- execute() raised or returned as documented --------------------------------------------
    if cell.raises is None:
        assert error is None, f"execute() raised {error!r}"
        assert result == cell.result
    else:
        assert isinstance(error, cell.raises), f"expected {cell.raises.__name__}, got {error!r}"
    assert [type(be.error) for be in g.branch_errors] == cell.branch_errors

    # -- a consumer that stays sees the whole stream, ending in exactly one END ---------------
    if not leaving:
        items = await bounded(consumer, what="the consumer to see END")
        assert items[-1] == END and items.count(END) == 1, items
        streamed = _markers_balanced(items)
        ran_streaming = {n for n in cell.nodes if g.nodes[n].stream}
        assert set(streamed) == ran_streaming, (streamed, items)
        assert all(c == 1 for c in streamed.values()), streamed
        late = [t for t in items if isinstance(t, str) and t.startswith("late")]
        assert late == [], f"late tokens reached the consumer: {items}"

    # -- spans: each started span ended exactly once; the right outcome and status ---------------
    assert tel.counter.problems() == []
    spans = tel.spans()
    assert len(spans) == sum(tel.counter.started.values())
    runs = [s for s in spans if s.name == RUN_SPAN]
    assert len(runs) == 1, [s.name for s in spans]
    run_span = runs[0]
    node_spans = {s.name: s for s in spans if s is not run_span}
    assert len(node_spans) == len(spans) - 1, "a node ran twice"
    assert sorted(node_spans) == sorted(cell.nodes), "the nodes that ran"
    for name, want in cell.nodes.items():
        span = node_spans[name]
        assert span.attributes["graphai.node.outcome"] == want, name
        assert span.parent is not None and span.parent.span_id == run_span.context.span_id, name
        _assert_status(span, want, name)
    assert run_span.attributes["graphai.run.outcome"] == cell.run
    _assert_status(run_span, cell.run, "run")

    # -- metrics: one duration point per node run, with its outcome -----------------------------
    counts: Counter[tuple[str, str]] = Counter()
    for p in tel.points("graphai.node.duration"):
        counts[p.attributes["graphai.node.name"], p.attributes["graphai.node.outcome"]] += p.count
    assert counts == Counter({(n, o): 1 for n, o in cell.nodes.items()})
    runs_recorded = [
        (p.attributes["graphai.run.outcome"], p.count) for p in tel.points("graphai.graph.duration")
    ]
    assert runs_recorded == [(cell.run, 1)]
    late_counted = sum(p.value for p in tel.points("graphai.node.late_tokens"))
    assert late_counted == len(probe.late_sent)
    if outcome == "late_token" and g.nodes["T"].stream:
        assert node_spans["T"].attributes["graphai.node.output.tokens"] == 2

    # -- no context noise, nothing left in flight --------------------------------------------------
    noise = [r.getMessage() for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert noise == []
    ended = [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry.sdk")]
    assert ended == [], "SDK warnings (a span used after it ended?)"
    assert telemetry.active_streams() == []


def _assert_status(span: Any, outcome: str, what: str) -> None:
    code = span.status.status_code
    if outcome == ERROR:
        assert code is StatusCode.ERROR, what
        assert span.attributes["error.type"] == "Boom", what
        assert any(e.name == "exception" for e in span.events), what
    else:
        assert code is StatusCode.UNSET, f"{what}: {outcome} must leave the status UNSET"
        assert "error.type" not in span.attributes, what
