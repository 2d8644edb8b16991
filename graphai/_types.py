"""
The graph's building blocks: the node protocol and the edge classes (re-exported by
``graphai.graph``, where upstream had them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = [
    "BranchCondition",
    "BranchEdge",
    "Edge",
    "JoinEdge",
    "NodeLike",
    "NodeProtocol",
    "NodeRef",
    "is_node",
]


class NodeProtocol(Protocol):
    """The interface of a decorated node."""

    name: str
    is_start: bool
    is_end: bool
    is_router: bool
    stream: bool

    async def invoke(
        self,
        input: dict[str, Any],
        callback: Any = None,
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]: ...


# What the builder accepts as a node: the class ``@node`` / ``@router`` makes, or an instance
NodeLike = NodeProtocol | type[NodeProtocol]
# ... and, where it refers to a node already added, its name
NodeRef = NodeLike | str

# A branch condition receives the source node's output dict and the graph state and returns
# (or resolves to) a truthy value to run the branch.
BranchCondition = Callable[[dict[str, Any], dict[str, Any]], "bool | Awaitable[bool]"]


class Edge:
    def __init__(self, source: Any, destination: Any) -> None:
        self.source = source
        self.destination = destination


class JoinEdge:
    def __init__(self, sources: list[Any], destination: Any) -> None:
        self.sources = sources
        self.destination = destination


class BranchEdge:
    """Side edge from ``source`` to the first node of an isolated pipeline
    (see :meth:`Graph.add_branch`)."""

    def __init__(
        self,
        source: Any,
        destination: Any,
        *,
        condition: BranchCondition | None = None,
        wait: bool = True,
    ) -> None:
        self.source = source
        self.destination = destination
        self.condition = condition
        self.wait = wait


def is_node(obj: Any) -> bool:
    """A decorated node (class or instance): a ``name`` and an ``invoke``."""
    return (
        not isinstance(obj, str)
        and isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "invoke", None))
    )
