"""The edge half of the graph builder (a ``Graph`` mixin): edges, branches, routers,
parallel paths, joins, start and end nodes, each keeping the run-time adjacency current."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from graphai._types import BranchCondition, BranchEdge, Edge, JoinEdge, NodeLike, NodeRef
from graphai._types import is_node as _is_node
from graphai.errors import NodeNotFoundError

__all__ = ["EdgeBuilder"]

Self = TypeVar("Self", bound="EdgeBuilder")


class EdgeBuilder:
    """Builder methods of :class:`graphai.Graph` that add edges (state lives on the Graph)."""

    nodes: dict[str, Any]
    edges: list[Any]
    join_nodes: set[Any]
    start_node: Any
    end_node: Any
    _succ: dict[str, list[Any]]
    _branches: dict[str, list[BranchEdge]]
    _join_of: dict[str, JoinEdge]
    _end_names: set[str]

    def _get_node(self, candidate: NodeRef, arg: str = "node") -> Any:
        if isinstance(candidate, str):
            found = self.nodes.get(candidate)
        elif _is_node(candidate):
            found = self.nodes.get(candidate.name)
        else:
            raise TypeError(
                f"{arg} must be a node or a node name (str), got {type(candidate).__name__} "
                f"{candidate!r}"
            )
        if found is None:
            shown = candidate if isinstance(candidate, str) else candidate.name
            raise NodeNotFoundError(f"Node with name '{shown}' not found.")
        return found

    def add_edge(self: Self, source: NodeRef, destination: NodeRef) -> Self:
        """Add an edge between two nodes already in the graph (objects or names)."""
        src = self._get_node(source, "add_edge(): source")
        dst = self._get_node(destination, "add_edge(): destination")
        self.edges.append(Edge(src, dst))
        self._succ.setdefault(src.name, []).append(dst)
        return self

    def add_branch(
        self: Self,
        source: NodeRef,
        destination: NodeRef,
        *,
        condition: BranchCondition | None = None,
        wait: bool = True,
    ) -> Self:
        """
        Add a branch edge: a side pipeline starting at ``destination`` once ``source`` ran.

        The pipeline follows regular edges (forks and joins included) and stops at an end
        node, a node without successors, or a node whose output has ``success: False``. Its
        results never enter the main payload; its exceptions are recorded in
        ``branch_errors`` instead of raised.

        Args:
            condition: optional ``(output, state) -> bool`` (may be async); falsy skips.
            wait: ``True``: the main path waits for the pipeline; ``False``: it runs
                detached, and ``execute()`` waits for it before returning.
        """
        if condition is not None and not callable(condition):
            raise TypeError(f"add_branch(): condition must be callable, got {type(condition).__name__}")
        src = self._get_node(source, "add_branch(): source")
        dst = self._get_node(destination, "add_branch(): destination")
        edge = BranchEdge(src, dst, condition=condition, wait=wait)
        self.edges.append(edge)
        self._branches.setdefault(src.name, []).append(edge)
        return self

    def add_router(
        self: Self, sources: Sequence[NodeRef], router: NodeRef, destinations: Sequence[NodeRef]
    ) -> Self:
        """Add a router between ``sources`` and ``destinations``; it picks via ``choice``
        (one name) or ``choices`` (several, run in parallel)."""
        if not getattr(router, "is_router", False):
            raise TypeError("A router object must be passed to the router parameter.")
        # resolve everything first: a bad argument leaves the graph unchanged
        r = self._get_node(router, "add_router(): router")
        srcs = [self._get_node(x, "add_router(): source") for x in sources]
        dsts = [self._get_node(x, "add_router(): destination") for x in destinations]
        for x in srcs:
            self.add_edge(x, r)
        for x in dsts:
            self.add_edge(r, x)
        return self

    def add_parallel(self: Self, source: NodeRef, destinations: Sequence[NodeRef]) -> Self:
        """Add an edge from ``source`` to each destination: they run concurrently."""
        src = self._get_node(source, "add_parallel(): source")
        dsts = [self._get_node(d, "add_parallel(): destination") for d in destinations]
        for d in dsts:
            self.add_edge(src, d)
        return self

    def add_join(self: Self, sources: Sequence[NodeRef], destination: NodeRef) -> Self:
        """Join parallel paths: when they all reach their source, ``destination`` runs once
        with the merged payload."""
        if isinstance(sources, (str, bytes)) or not isinstance(sources, Iterable):
            raise TypeError(f"add_join(): sources must be a list of nodes, got {type(sources).__name__}")
        srcs = [self._get_node(s, "add_join(): source") for s in sources]
        dst = self._get_node(destination, "add_join(): destination")
        edge = JoinEdge(srcs, dst)
        self.edges.append(edge)
        self.join_nodes.update(srcs)
        for s in srcs:
            self._join_of.setdefault(s.name, edge)
        return self

    def set_start_node(self: Self, node: NodeLike) -> Self:
        """Make ``node`` the start node."""
        if not _is_node(node):
            raise TypeError(f"set_start_node(): expected a node, got {type(node).__name__}")
        self.start_node = node
        return self

    def set_end_node(self: Self, node: NodeLike) -> Self:
        """Mark ``node`` as an end node (counts for ``compile()`` and stops runs).

        .. versionchanged:: 0.1.0
           Honoured by ``compile()`` and ``execute()`` (upstream stored it only).
        """
        if not _is_node(node):
            raise TypeError(f"set_end_node(): expected a node, got {type(node).__name__}")
        self.end_node = node
        self._end_names.add(node.name)
        return self
