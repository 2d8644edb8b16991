"""
The graph builder: nodes, edges, routers, parallel paths, joins and branches, ``compile()``, and
the ``execute()`` / ``execute_many()`` facade over the run loop (:mod:`graphai._runner`).

Compatible with graphai-lib 0.0.12, with its bugs fixed on purpose: the stream always ends
with END, markers carry their own node, the caller's input is never mutated, joins count for
``compile()`` and run inside branch pipelines, successor lookup is constant time, and more
(``docs/differences.md``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from graphai import _hooks
from graphai._builder import EdgeBuilder
from graphai._compile import validate
from graphai._context import RUN_ERRORS
from graphai._plan import Plan, wait_all
from graphai._runner import Run
from graphai._stream import close_callback, discard_unread
from graphai._types import BranchCondition, BranchEdge, Edge, JoinEdge, NodeLike, NodeProtocol
from graphai._types import is_node as _is_node
from graphai.callback import Callback, CallbackProtocol, EventCallback
from graphai.errors import (
    BranchError,
    GraphCompileError,
    GraphError,
    MaxStepsError,
)

__all__ = [
    "BranchCondition",
    "BranchEdge",
    "BranchError",
    "Edge",
    "Graph",
    "GraphCompileError",
    "GraphError",
    "JoinEdge",
    "MaxStepsError",
    "NodeProtocol",
]


class Graph(EdgeBuilder):
    """
    A graph of async nodes.

    Args:
        max_steps: maximum number of transitions in one run (``MaxStepsError`` beyond).
        initial_state: the graph state (shared by runs; nodes read it via a ``state`` param).
        name: the graph's name in telemetry (spans, metrics, logs).

    .. versionchanged:: 0.1.0
       ``name`` added.
    """

    def __init__(
        self,
        max_steps: int = 10,
        initial_state: dict[str, Any] | None = None,
        *,
        name: str = "graph",
    ) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int):
            raise TypeError(f"Graph(): max_steps must be an int, got {type(max_steps).__name__}")
        if initial_state is not None and not isinstance(initial_state, dict):
            raise TypeError(
                f"Graph(): initial_state must be a dict or None, got {type(initial_state).__name__}"
            )
        if not isinstance(name, str) or not name:
            raise TypeError(f"Graph(): name must be a non-empty str, got {name!r}")
        self.name = name
        self.nodes: dict[str, Any] = {}
        self.edges: list[Any] = []
        self.start_node: Any = None
        self.end_nodes: list[Any] = []
        self.join_nodes: set[Any] = set()
        self.Callback: type[CallbackProtocol] = Callback
        self.max_steps = max_steps
        self.state: dict[str, Any] = initial_state or {}
        self._branch_errors: list[BranchError] = []  # the last started run's (upstream's view)
        self._detached_tasks: set[asyncio.Task[Any]] = set()
        # adjacency, maintained by the builder: constant-time lookups at run time
        self._succ: dict[str, list[Any]] = {}
        self._branches: dict[str, list[BranchEdge]] = {}
        self._join_of: dict[str, JoinEdge] = {}  # join source name -> first JoinEdge listing it
        self._end_names: set[str] = set()  # is_end nodes and set_end_node()

    # -- state -----------------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The live graph state (not a copy)."""
        return self.state

    def set_state(self, state: dict[str, Any]) -> Graph:
        """Replace the graph state."""
        if not isinstance(state, dict):
            raise TypeError(f"set_state(): state must be a dict, got {type(state).__name__}")
        self.state = state
        return self

    def update_state(self, values: dict[str, Any]) -> Graph:
        """``dict.update`` the graph state."""
        if not isinstance(values, dict):
            raise TypeError(f"update_state(): values must be a dict, got {type(values).__name__}")
        self.state.update(values)
        return self

    def reset_state(self) -> Graph:
        """Reset the graph state to a new empty dict."""
        self.state = {}
        return self

    # -- building --------------------------------------------------------------------------
    def add_node(self, node: NodeLike) -> Graph:
        """Add a node (the decorated class or an instance of it)."""
        if not _is_node(node):
            raise TypeError(
                "add_node(): expected a node (a function decorated with @node or @router), "
                f"got {type(node).__name__} {node!r}"
            )
        if node.name in self.nodes:
            raise GraphError(f"Node with name '{node.name}' already exists.")
        name = node.name
        if name == "END" or name.endswith((":start", ":end")):
            # its id marker <graphai:NAME:> would read as another marker (special tokens)
            clash = (
                "the stream's END marker"
                if name == "END"
                else f"the {name.rsplit(':', 1)[1]} marker of node {name.rsplit(':', 1)[0]!r}"
            )
            raise ValueError(
                f"add_node(): node name {name!r} is reserved: its stream marker would read as "
                f"{clash}; names may not be 'END' or end with ':start' or ':end'"
            )
        if node.is_start and self.start_node is not None:
            raise GraphError(
                "Multiple start nodes are not allowed. Start node "
                f"'{self.start_node.name}' already exists, so new start "
                f"node '{node.name}' can not be added to the graph."
            )
        self.nodes[node.name] = node
        if node.is_start:
            self.start_node = node
        if node.is_end:
            self.end_nodes.append(node)
            self._end_names.add(node.name)
        return self

    def compile(self, *, strict: bool = False) -> Graph:
        """
        Validate the graph: nodes present, a start node, an end node, every node reachable
        from the start (regular, branch and join edges), and with ``strict=True`` no cycles.
        Raises :class:`GraphCompileError`; returns ``self``.
        """
        validate(self.nodes, self.edges, self.start_node, self._end_names, strict=strict)
        return self

    # -- callbacks -------------------------------------------------------------------------
    def get_callback(self) -> CallbackProtocol:
        """A new instance of the callback class (``Callback`` unless ``set_callback``)."""
        return self.Callback()

    def set_callback(self, callback_class: type[CallbackProtocol]) -> Graph:
        """Set the callback class used by ``get_callback`` and by ``execute`` without one."""
        if not isinstance(callback_class, type):
            raise TypeError(
                f"set_callback(): expected a callback class, got {type(callback_class).__name__}"
            )
        self.Callback = callback_class
        return self

    @property
    def branch_errors(self) -> list[BranchError]:
        """The branch failures of this task's latest run of this graph (of the latest run
        started anywhere, when this task ran none). Concurrent runs each see their own."""
        mine = RUN_ERRORS.get()
        if mine is not None:
            errs = mine.get(self)
            if errs is not None:
                return errs
        return self._branch_errors

    @branch_errors.setter
    def branch_errors(self, value: list[BranchError]) -> None:
        self._branch_errors = value
        mine = RUN_ERRORS.get()
        if mine is not None and self in mine:
            RUN_ERRORS.set({k: v for k, v in mine.items() if k is not self})

    # -- running ---------------------------------------------------------------------------
    async def execute(
        self, input: dict[str, Any], callback: CallbackProtocol | None = None
    ) -> dict[str, Any]:
        """
        Run the graph on ``input`` (never mutated) and return the merged payload.

        The callback's stream always ends with END, also when a node raises (the exception
        then propagates) or the run is cancelled. Without a ``callback``, one is made with
        ``get_callback()``; nobody can read it, so its tokens are counted but not buffered.
        """
        if callback is None:
            callback = self.get_callback()
            cls: type = type(callback)
            if cls in (Callback, EventCallback) and type(self).get_callback is Graph.get_callback:
                discard_unread(callback)  # nobody can read it: keep nothing
        if not isinstance(input, dict):
            await close_callback(callback)
            raise TypeError(f"execute(): input must be a dict, got {type(input).__name__}")
        if self.start_node is None:
            await close_callback(callback)
            raise AssertionError("Graph must be compiled before execution")
        instr = _hooks.get_instrumentation()
        obs = instr.run(self.name, uuid.uuid4().hex, input) if instr.enabled else _hooks.NOOP_RUN
        run = Run(self, self._plan(), callback, obs, self._detached_tasks)
        self._branch_errors = run.branch_errors
        mine = RUN_ERRORS.get()
        RUN_ERRORS.set({**(mine or {}), self: run.branch_errors})
        return await run.execute(input)

    def _plan(self) -> Plan:
        return Plan(
            self.name,
            self.nodes,
            self.start_node,
            self._succ,
            self._branches,
            self._join_of,
            self._end_names,
            self.max_steps,
        )

    async def execute_many(
        self, inputs: Iterable[dict[str, Any]], *, concurrency: int = 5
    ) -> list[dict[str, Any]]:
        """Run ``execute`` on each input, at most ``concurrency`` at once; results in input
        order; the first exception propagates (the other runs are cancelled). Afterwards
        ``branch_errors`` holds the branch errors of these runs, in input order."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"execute_many(): concurrency must be a positive int, got {concurrency!r}")
        sem = asyncio.Semaphore(concurrency)

        per_run: list[list[BranchError]] = []

        async def one(inp: dict[str, Any]) -> dict[str, Any]:
            async with sem:
                mine: list[BranchError] = []
                per_run.append(mine)
                result = await self.execute(input=inp)
                mine.extend(self.branch_errors)  # this task's own run
                return result

        tasks = [asyncio.ensure_future(one(i)) for i in inputs]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        errors = [be for errs in per_run for be in errs]
        self._branch_errors = errors
        RUN_ERRORS.set({**(RUN_ERRORS.get() or {}), self: errors})
        return results

    async def wait_for_branches(self) -> None:
        """Wait for every detached branch pipeline started by this graph. A pipeline that
        ended with a ``BaseException`` other than cancellation (``Exception`` s are recorded
        in ``branch_errors``) is re-raised here once all of them are done."""
        await wait_all(self._detached_tasks)

    def visualize(self, *, save_path: str | None = None) -> None:
        """Draw the graph with matplotlib + networkx (extra ``[viz]``)."""
        from graphai._viz import visualize

        visualize(self, save_path=save_path)
