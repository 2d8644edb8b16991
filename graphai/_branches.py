"""Branch pipelines of a run: conditions, waited and detached pipelines, their errors."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from graphai._log import LOG_BRANCH_CONDITION_FAILED, LOG_BRANCH_FAILED, log_event
from graphai._plan import wait_all
from graphai._types import BranchEdge
from graphai.errors import BranchError, MaxStepsError

if TYPE_CHECKING:
    from graphai._plan import Plan
    from graphai.graph import Graph

__all__ = ["Branches"]

# Waited branch pipelines nested deeper than this run in a task of their own (a fresh stack):
# a cycle through waited branches ends at ``max_steps``, never with a RecursionError.
_INLINE_PIPELINE_DEPTH = 16


class Branches:
    """The branch side of a ``Run`` (mixed in): its state lives on the run."""

    __slots__ = ()
    graph: Graph
    plan: Plan
    detached: set[asyncio.Task[Any]]
    all_detached: set[asyncio.Task[Any]]
    branch_errors: list[BranchError]
    fatal: BaseException | None

    def set_fatal(self, exc: BaseException) -> None:
        raise NotImplementedError  # pragma: no cover - Run's

    async def run_path(
        self,
        node: Any,
        payload: dict[str, Any],
        steps: int,
        stop_at_join: bool,
        pipeline: bool,
        end: Any,
        depth: int = 0,
    ) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - Run's

    def detached_done(self, task: asyncio.Task[Any]) -> None:
        self.detached.discard(task)
        if not task.cancelled():
            exc = task.exception()  # retrieved: no "exception was never retrieved" log
            if exc is not None and not isinstance(exc, Exception) and self.fatal is None:
                self.set_fatal(exc)

    async def run_branches(
        self,
        node: Any,
        branches: list[BranchEdge],
        output: dict[str, Any],
        payload: dict[str, Any],
        steps: int,
        depth: int,
    ) -> None:
        for edge in branches:
            if edge.condition is not None:
                try:
                    verdict = edge.condition(output, self.graph.state)
                    if inspect.isawaitable(verdict):
                        verdict = await verdict
                except Exception as exc:
                    log_event(
                        "error",
                        LOG_BRANCH_CONDITION_FAILED,
                        source=edge.source.name,
                        destination=edge.destination.name,
                        error_type=type(exc).__name__,
                    )
                    self.branch_errors.append(BranchError(edge.source.name, edge.destination.name, exc))
                    continue
                if not verdict:
                    continue
            coro = self.guard_pipeline(edge, payload.copy(), steps, depth + 1)
            if edge.wait:
                if depth + 1 < _INLINE_PIPELINE_DEPTH:
                    await coro
                else:  # a fresh stack; cancelling this run cancels the task too
                    await asyncio.ensure_future(coro)
            else:
                task = asyncio.ensure_future(coro)
                self.detached.add(task)
                task.add_done_callback(self.detached_done)
                self.all_detached.add(task)
                task.add_done_callback(self.all_detached.discard)

    async def guard_pipeline(
        self, edge: BranchEdge, payload: dict[str, Any], steps: int, depth: int
    ) -> None:
        try:
            if steps >= self.plan.max_steps:
                raise MaxStepsError(self.plan.max_steps, where="branch pipeline")
            await self.run_path(edge.destination, payload, steps, False, True, None, depth)
        except Exception as exc:
            log_event(
                "error",
                LOG_BRANCH_FAILED,
                source=edge.source.name,
                destination=edge.destination.name,
                error_type=type(exc).__name__,
            )
            self.branch_errors.append(BranchError(edge.source.name, edge.destination.name, exc))

    async def wait_detached(self) -> None:
        await wait_all(self.detached)
        if self.fatal is not None:
            raise self.fatal

    async def cancel_detached(self) -> None:
        if self.detached:
            tasks = list(self.detached)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
