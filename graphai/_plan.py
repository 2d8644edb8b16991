"""What a run needs of its graph (:class:`Plan`) and how it waits for a live set of tasks."""

from __future__ import annotations

import asyncio
from typing import Any

from graphai._types import BranchEdge, JoinEdge
from graphai.errors import NodeNotFoundError

__all__ = ["Plan", "wait_all"]


class Plan:
    """What a run needs of its graph: the nodes and the adjacency the builder maintains
    (shared, not copied: building a plan costs a few references)."""

    __slots__ = ("branches", "end_names", "join_of", "max_steps", "name", "nodes", "start", "succ")

    def __init__(
        self,
        name: str,
        nodes: dict[str, Any],
        start: Any,
        succ: dict[str, list[Any]],
        branches: dict[str, list[BranchEdge]],
        join_of: dict[str, JoinEdge],
        end_names: set[str],
        max_steps: int,
    ) -> None:
        self.name = name
        self.nodes = nodes
        self.start = start
        self.succ = succ
        self.branches = branches
        self.join_of = join_of
        self.end_names = end_names
        self.max_steps = max_steps

    def is_end(self, node: Any) -> bool:
        return bool(node.is_end) or node.name in self.end_names

    def node_by_name(self, name: Any) -> Any:
        found = self.nodes.get(name) if isinstance(name, str) else None
        if found is None:
            raise NodeNotFoundError(f"Node with name {name} not found.")
        return found

    def known_choice(self, choice: Any) -> Any:
        """A router's choice for its span, or ``None`` unless every name is a node of this
        graph (unknown choice text is the router's raw output: content, never telemetry)."""
        names = choice if isinstance(choice, (list, tuple)) else [choice]
        nodes = self.nodes
        return choice if all(isinstance(n, str) and n in nodes for n in names) else None


async def wait_all(tasks: set[asyncio.Task[Any]]) -> None:
    """Wait until ``tasks`` (a live set: tasks may add more) is empty; then re-raise the first
    ``BaseException`` that is neither an ``Exception`` nor a cancellation (pipelines record
    their ``Exception`` s as branch errors), so it is never swallowed."""
    fatal: BaseException | None = None
    while tasks:
        for res in await asyncio.gather(*list(tasks), return_exceptions=True):
            if (
                fatal is None
                and isinstance(res, BaseException)
                and not isinstance(res, (Exception, asyncio.CancelledError))
            ):
                fatal = res
    if fatal is not None:
        raise fatal
