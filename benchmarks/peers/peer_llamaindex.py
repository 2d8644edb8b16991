"""
LlamaIndex Workflows peer (package llama-index-workflows), written as its docs show: a
``Workflow`` whose ``@step`` methods take and return typed ``Event``s, run with
``handler = workflow.run(...)``.

- Stream: the step calls ``ctx.write_event_to_stream(Token(delta=t))`` per token; the consumer
  iterates ``handler.stream_events()`` and then awaits ``handler`` for the ``StopEvent`` result.
- Chain: one step per node, each taking the previous step's event type and returning the next
  (``StartEvent -> X1 -> ... -> StopEvent``); the steps are added to a workflow class built for
  the size with ``@step(workflow=cls)``, the documented form for steps defined outside a class.
- Fan-out, as the "Concurrent execution" page shows: a step returning ``list[Task]`` fans out
  one event per element, ``@step(num_workers=20)`` runs 20 of them at once, and a step taking
  ``list[Done]`` fans in once all arrived. (One step run 20 times, not 20 distinct steps: the
  way the docs parallelise.)

Workflows get ``timeout=None``: the default (45 s) would cut the 1000-step chain short on a
loaded machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (
    FANOUT,
    FANOUT_TOTAL,
    Peer,
    Run,
    check_equal,
    check_tokens,
    consume_into,
    main,
    perf_counter,
    tokens,
)
from workflows import Context, Workflow, step
from workflows.events import Event, StartEvent, StopEvent

PEER = Peer(
    engine="LlamaIndex Workflows",
    dists=("llama-index-workflows", "llama-index-instrumentation", "pydantic"),
    module="workflows",
    build=lambda args: build(args),
)


# -- stream ----------------------------------------------------------------------------------
class Token(Event):
    delta: str


class StreamFlow(Workflow):
    @step
    async def produce(self, ctx: Context, ev: StartEvent) -> StopEvent:
        n = ev.n
        for t in tokens(n):
            ctx.write_event_to_stream(Token(delta=t))
        return StopEvent(result=n)


def stream_run() -> Run:
    flow = StreamFlow(timeout=None)

    async def once(n: int) -> tuple[float, str | None]:
        items: list[Event] = []
        t0 = perf_counter()
        handler = flow.run(n=n)
        await consume_into(items, handler.stream_events())
        result = await handler
        dt = perf_counter() - t0
        got = [ev.delta for ev in items if isinstance(ev, Token)]
        return dt, check_tokens(got, n) or check_equal("result", result, n)

    return once


# -- chain -----------------------------------------------------------------------------------
def chain_workflow(n: int) -> Workflow:
    events: list[type[Event]] = [
        type(f"X{i}", (Event,), {"__annotations__": {"x": int}}) for i in range(1, n)
    ]
    cls: type[Workflow] = type(f"Chain{n}", (Workflow,), {})

    def make(i: int) -> Any:
        nxt = events[i] if i + 1 < n else None

        async def s(ev: Any) -> Any:
            return nxt(x=ev.x + 1) if nxt is not None else StopEvent(result=ev.x + 1)

        s.__name__ = s.__qualname__ = f"s{i}"
        s.__annotations__ = {
            "ev": events[i - 1] if i else StartEvent,
            "return": nxt if nxt is not None else StopEvent,
        }
        return s

    for i in range(n):
        step(workflow=cls)(make(i))
    return cls(timeout=None)


def chain_run(n: int) -> Run:
    flow = chain_workflow(n)

    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            result = await flow.run(x=0)
            if result != n:
                problem = f"chain of {n} returned {result!r}"
        return perf_counter() - t0, problem

    return once


# -- fan-out ---------------------------------------------------------------------------------
class Task(Event):
    i: int


class Done(Event):
    i: int


class FanFlow(Workflow):
    @step
    async def fan_out(self, ev: StartEvent) -> list[Task]:
        return [Task(i=i) for i in range(FANOUT)]

    @step(num_workers=FANOUT)
    async def work(self, ev: Task) -> Done:
        return Done(i=ev.i)

    @step
    async def join(self, evs: list[Done]) -> StopEvent:
        return StopEvent(result=sum(e.i for e in evs))


def fanout_run() -> Run:
    flow = FanFlow(timeout=None)

    async def once(execs: int) -> tuple[float, str | None]:
        problem = None
        t0 = perf_counter()
        for _ in range(execs):
            result = await flow.run()
            if result != FANOUT_TOTAL:
                problem = check_equal("total", result, FANOUT_TOTAL)
        return perf_counter() - t0, problem

    return once


def build(args: argparse.Namespace) -> Run:
    if args.measure == "stream":
        return stream_run()
    if args.measure == "chain":
        return chain_run(args.size)
    return fanout_run()


if __name__ == "__main__":
    raise SystemExit(main(PEER))
