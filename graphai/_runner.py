"""
The run loop: one :class:`Run` per ``execute()`` holds every piece of per-run state (steps,
branch errors, detached tasks, the run's observer) and walks the graph's :class:`Plan`: the
step loop, fan-out to parallel paths and their join, branch pipelines.

The runner knows the graph only through its plan (adjacency built by the builder) and the
callback only through the marker protocol; telemetry only through ``graphai._hooks``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from graphai import _hooks
from graphai._branches import Branches
from graphai._plan import Plan
from graphai._stream import close_callback, node_stream
from graphai.errors import (
    BranchError,
    ConsumerGoneError,
    GraphError,
    MaxStepsError,
    NoOutgoingEdgeError,
)

if TYPE_CHECKING:
    from graphai.graph import Graph

__all__ = ["Run", "outcome_of"]


def outcome_of(exc: BaseException) -> str:
    """The telemetry outcome of a run or node that ended with ``exc``."""
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit, ConsumerGoneError)):
        return _hooks.CANCELLED
    return _hooks.ERROR


class _PathEnd:
    """Where a parallel path ended: its last node observer and the time it finished."""

    __slots__ = ("obs", "t")

    def __init__(self) -> None:
        self.obs: _hooks.NodeObserver | None = None
        self.t = 0.0


class Run(Branches):
    """One ``execute()``: all of its state, and the walk over the plan."""

    __slots__ = (
        "all_detached",
        "branch_errors",
        "callback",
        "detached",
        "fatal",
        "graph",
        "obs",
        "plan",
        "steps",
        "stream",
    )

    def __init__(
        self,
        graph: Graph,
        plan: Plan,
        callback: Any,
        obs: _hooks.RunObserver,
        all_detached: set[asyncio.Task[Any]],
    ) -> None:
        self.graph = graph  # for its live ``state`` (nodes may replace it mid-run)
        self.plan = plan
        self.callback = callback
        self.stream = node_stream(callback)  # how node markers reach this callback
        self.obs = obs
        self.all_detached = all_detached  # the graph's, for wait_for_branches()
        self.detached: set[asyncio.Task[Any]] = set()
        self.steps = 0
        # this run's branch failures; ``Graph.branch_errors`` shows the list of the run that
        # the reading task awaited (concurrent runs of one Graph never mix their errors)
        self.branch_errors: list[BranchError] = []
        # the first BaseException (not an Exception, not a cancellation) a detached branch
        # ended with: execute() re-raises it once the other branches are done
        self.fatal: BaseException | None = None

    def set_fatal(self, exc: BaseException) -> None:
        self.fatal = exc

    async def execute(self, input: dict[str, Any]) -> dict[str, Any]:
        """The whole run: the main path, detached branches, END; the run observer ends
        exactly once on every exit path."""
        obs = self.obs
        self.stream.observe(obs)
        try:
            result = await self.run_path(self.plan.start, dict(input), 0, False, False, None)
            await self.wait_detached()
            await self.stream.before_end()
        except BaseException as exc:
            try:
                await self.cancel_detached()
            finally:  # also when cancelled again while cancelling the detached branches
                obs.end(outcome_of(exc), exc, self.steps)
                await self.close()
            raise
        try:
            await self.close()
        except BaseException as exc:  # close() cancelled (or raising a BaseException)
            obs.end(outcome_of(exc), exc, self.steps)
            raise
        result.pop("upstream", None)
        obs.end(_hooks.OK, None, self.steps, result)
        return result

    async def invoke_node(
        self,
        node: Any,
        payload: dict[str, Any],
        step: int,
        join: _hooks.JoinInfo | None,
    ) -> tuple[dict[str, Any], _hooks.NodeObserver]:
        """Run one node: open its span and markers, call it, validate, close both."""
        name = node.name
        stream = node.stream
        obs = self.obs.node(
            name,
            getattr(node, "kind", "router" if node.is_router else "node"),
            stream,
            step,
            join,
            payload,
            getattr(node, "model", None),
        )
        opened = None
        ctx_token = None
        try:
            if stream:  # the start markers; the node gets its part of the stream
                opened = await self.stream.open(name, obs)
            ctx_token = obs.attach()
            view = opened.callback if opened is not None else None
            bind = getattr(node, "__graphai_bind__", None)
            if bind is not None:
                output = await node.__graphai_call__(bind(payload, view, self.graph.state))
            else:
                output = await node.invoke(input=dict(payload), callback=view, state=self.graph.state)
            if not isinstance(output, dict):
                raise ValueError(
                    f"Expected dictionary output from node {name}. "
                    f"Instead, got {type(output)} from '{output}'."
                )
        except BaseException as exc:
            try:
                if ctx_token is not None:
                    obs.detach(ctx_token)
                if opened is not None:
                    await self.stream.abort(opened, outcome_of(exc))
            finally:
                obs.end(outcome_of(exc), exc)
            raise
        obs.detach(ctx_token)
        if opened is not None:
            try:
                await self.stream.close(opened)
            except BaseException as exc:
                obs.end(outcome_of(exc), exc)
                raise
        if node.is_router:
            obs.router_choice(self.plan.known_choice(output.get("choices", output.get("choice"))))
        obs.end(_hooks.OK, None, output)
        return output, obs

    async def run_path(
        self,
        node: Any,
        payload: dict[str, Any],
        steps: int,
        stop_at_join: bool,
        pipeline: bool,
        end: _PathEnd | None,
        depth: int = 0,
    ) -> dict[str, Any]:
        """
        Run from ``node`` until an end node (or, in a parallel path, a join source; in a
        branch pipeline, a node without successors or with ``success: False``).

        A pipeline started from the main path counts its steps from 0 (upstream); one started
        from inside a pipeline goes on from its parent's count, so ``max_steps`` bounds a cycle
        through branches. ``depth`` is the pipeline nesting depth.
        """
        join: _hooks.JoinInfo | None = None
        max_steps = self.plan.max_steps
        while True:
            output, obs = await self.invoke_node(node, payload, steps, join)
            join = None
            if end is not None:
                end.obs = obs
            name = node.name
            payload = {**payload, **output, "upstream": {"node": name, "output": output}}
            branches = self.plan.branches.get(name)
            if branches:
                # a branch hop inside a pipeline counts as a step: a cycle made only of
                # branch edges still reaches max_steps
                await self.run_branches(
                    node, branches, output, payload, steps + 1 if pipeline else 0, depth
                )
            if (pipeline and output.get("success") is False) or self.plan.is_end(node):
                break
            next_nodes: list[Any]
            if node.is_router and "choices" in output:
                names = output["choices"]
                del output["choices"]
                if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
                    raise GraphError(
                        f"Router {name} returned `choices` of type {type(names).__name__}; "
                        "expected a list of node names"
                    )
                next_nodes = [self.plan.node_by_name(n) for n in names]
            elif node.is_router and (not pipeline or "choice" in output):
                choice = str(output["choice"])
                del output["choice"]
                next_nodes = [self.plan.node_by_name(choice)]
            else:
                next_nodes = self.plan.succ.get(name, [])
            if stop_at_join and name in self.plan.join_of:
                break
            if not next_nodes:
                if pipeline:
                    break
                raise NoOutgoingEdgeError(f"No outgoing edge found for current node '{name}'.")
            if pipeline:
                steps += 1
                if steps >= max_steps:
                    raise MaxStepsError(max_steps, where="branch pipeline")
            if len(next_nodes) == 1:
                node = next_nodes[0]
            else:
                ends = [_PathEnd() for _ in next_nodes]
                sub_steps = steps if pipeline else steps + 1
                tasks = [
                    asyncio.ensure_future(
                        self.run_path(
                            n, payload.copy(), sub_steps, True, pipeline, pe, depth
                        )
                    )
                    for n, pe in zip(next_nodes, ends, strict=True)
                ]
                try:
                    results = await asyncio.gather(*tasks)
                except BaseException:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise
                merged = payload.copy()
                for res in results:
                    merged.update(res)
                join_edge = next(
                    (self.plan.join_of[n.name] for n in next_nodes if n.name in self.plan.join_of), None
                )
                if join_edge is None:
                    payload = merged
                    break
                times = [pe.t for pe in ends]
                join = _hooks.JoinInfo(
                    [pe.obs for pe in ends if pe.obs is not None], max(times) - min(times)
                )
                if not pipeline:
                    steps += 1
                node = join_edge.destination
                payload = merged
            if not pipeline:
                steps += 1
                if steps >= max_steps:
                    raise MaxStepsError(max_steps)
            if steps > self.steps:
                self.steps = steps
        if end is not None:
            end.t = perf_counter()
        if steps > self.steps:
            self.steps = steps
        return payload

    async def close(self) -> None:
        await close_callback(self.callback)
